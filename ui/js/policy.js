// The policy editor shared by a group's page (overrides over the global defaults) and the settings
// page (global defaults over the built-in ones). The keys, how each is edited and the choices come
// from the server (`policy_fields` of the vocabulary); only their wording is kept here, and a key
// without wording is still editable under its own name. An empty control means "inherit"; the
// server validates every value with the enforcer's own rules and its message is shown as is: at
// the field when the problem names one of the keys (its `field`, such as `mute_for_s`), above the
// button otherwise (`field` is `policy` when no one key is at fault).

import { h, field, select } from "./dom.js";
import { words } from "./vocabulary.js";

/// How each key reads in the editor: its label, an optional hint, and words for some choices.
const WORDING = {
  require: { label: "Channels required", choices: { all: "All of them", any: "Any one" } },
  action: { label: "Action on non-subscribers" },
  escalate_after: { label: "Escalate after warnings", hint: "0: never" },
  escalate_to: { label: "Escalate to" },
  grace_s: { label: "Grace after joining (s)" },
  warning_ttl_s: { label: "Delete warnings after (s)", hint: "0: keep until verified" },
  reply_ttl_s: { label: "Delete command replies after (s)" },
  mute_for_s: { label: "Restriction lasts (s)", hint: "0: until verified; otherwise at least 30" },
  fail_mode: { label: "When membership cannot be read", choices: { open: "Let them speak (open)", closed: "Treat as not subscribed (closed)" } },
  channel_senders: { label: "Messages sent as another channel", choices: { delete: "Delete them", allow: "Let them through" } },
  welcome: { label: "Welcome subscribed newcomers" },
  restore_on_rejoin: { label: "Lift restriction on channel rejoin" },
  join_requests: { label: "Join requests", choices: { off: "Leave to the administrators", approve_subscribers: "Approve subscribers" } },
  join_request_timeout_s: { label: "Decline unsubscribed requesters after (s)", hint: "0: leave pending; at most 604800 (7 days)" },
  join_query_fallback: { label: "Guard query without a check page", choices: { queue: "Queue it and write to them", decline: "Decline it" } },
  language: { label: "Language", choices: { en: "English", es: "Español" } },
  allowlist: { label: "Allowlist (user ids)", hint: "comma-separated" },
};

/// The editor's fields: the server's keys and kinds with this file's wording.
function policyFields() {
  return words().policy_fields.map((described) => {
    const wording = WORDING[described.key] || {};
    return {
      key: described.key,
      label: wording.label || described.key,
      hint: wording.hint,
      choices: described.choices?.map((choice) => [choice, wording.choices?.[choice] || choice]),
      number: described.kind === "number",
      bool: described.kind === "bool",
      list: described.kind === "list",
    };
  });
}

function shown(value) {
  if (Array.isArray(value)) return value.length ? value.join(", ") : "none";
  if (value === true) return "yes";
  if (value === false) return "no";
  return String(value);
}

function control(spec, override, inherited) {
  const inherit = [["", `Inherit (${shown(inherited)})`]];
  if (spec.choices) {
    // A stored value the editor does not offer (set through the API) is shown and kept, not lost
    // on the next save of another field.
    const known = override === undefined || spec.choices.some(([value]) => value === override);
    const kept = known ? [] : [[override, `${override} (stored; not offered)`]];
    return select([...inherit, ...spec.choices, ...kept], override);
  }
  if (spec.bool) return select([...inherit, ["true", "Yes"], ["false", "No"]], override === undefined ? "" : String(override));
  const input = h("input", { type: spec.number ? "number" : "text", min: spec.number ? 0 : undefined, placeholder: `inherit (${shown(inherited)})` });
  if (override !== undefined) input.value = spec.list ? override.join(", ") : String(override);
  return input;
}

/// The layer the form describes: only the keys given a value.
function collect(form) {
  const layer = {};
  for (const spec of policyFields()) {
    const raw = form.elements[`policy-${spec.key}`].value.trim();
    if (raw === "") continue;
    if (spec.number) layer[spec.key] = Number(raw);
    else if (spec.bool) layer[spec.key] = raw === "true";
    else if (spec.list) layer[spec.key] = raw.split(/[\s,]+/).filter(Boolean).map(Number);
    else layer[spec.key] = raw;
  }
  return layer;
}

/// The policy key a refusal's `field` names, if it names one.
function refusedKey(field) {
  return words().policy_fields.some((described) => described.key === field) ? field : null;
}

/// Shows `message` at the control of `key`, which is marked invalid and described by it.
function refuse(form, key, message) {
  const control = form.elements[`policy-${key}`];
  const note = h("p", { id: `policy-${key}-error`, class: "error", role: "alert", "data-refused": key }, message);
  control.closest(".field").append(note);
  control.setAttribute("aria-invalid", "true");
  control.setAttribute("aria-describedby", note.id);
  control.focus();
}

function clearRefusals(form) {
  for (const note of form.querySelectorAll("[data-refused]")) note.remove();
  for (const control of form.querySelectorAll("[aria-invalid]")) {
    control.removeAttribute("aria-invalid");
    control.removeAttribute("aria-describedby");
  }
}

const notANumber = (value) => Number.isNaN(value) || (Array.isArray(value) && value.some(Number.isNaN));

/// A form over `overrides`, each key falling back to `inherited[key]`; `save(layer)` stores it.
export function policyForm(title, overrides, inherited, save) {
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "panel", "aria-label": title },
    h("h2", {}, title),
    h("div", { class: "form-grid" }, policyFields().map((spec) =>
      field(`policy-${spec.key}`, spec.label, control(spec, overrides?.[spec.key], inherited?.[spec.key]), spec.hint))),
    error,
    h("button", { type: "submit", class: "primary" }, "Save policy"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    clearRefusals(form);
    const layer = collect(form);
    const unreadable = Object.keys(layer).find((key) => notANumber(layer[key]));
    if (unreadable) {
      refuse(form, unreadable, "Numbers only, please: seconds, counts and user ids are whole numbers.");
      return;
    }
    try {
      await save(layer);
    } catch (failure) {
      const key = refusedKey(failure.field);
      if (key) refuse(form, key, failure.message);
      else error.textContent = failure.message;
    }
  });
  return form;
}
