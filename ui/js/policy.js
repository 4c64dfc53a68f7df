// The policy editor shared by a group's page (overrides over the global defaults) and the settings
// page (global defaults over the built-in ones). An empty control means "inherit"; the server
// validates every value with the enforcer's own rules and its message is shown as is.

import { h, field, select } from "./dom.js";

const ACTIONS = ["warn", "restrict", "kick", "ban"];

export const POLICY_FIELDS = [
  { key: "require", label: "Channels required", choices: [["all", "All of them"], ["any", "Any one"]] },
  { key: "action", label: "Action on non-subscribers", choices: ACTIONS },
  { key: "escalate_after", label: "Escalate after warnings", number: true, hint: "0: never" },
  { key: "escalate_to", label: "Escalate to", choices: ACTIONS },
  { key: "grace_s", label: "Grace after joining (s)", number: true },
  { key: "warning_ttl_s", label: "Delete warnings after (s)", number: true, hint: "0: keep until verified" },
  { key: "reply_ttl_s", label: "Delete command replies after (s)", number: true },
  { key: "mute_for_s", label: "Restriction lasts (s)", number: true, hint: "0: until verified; otherwise at least 30" },
  { key: "fail_mode", label: "When membership cannot be read", choices: [["open", "Let them speak (open)"], ["closed", "Treat as not subscribed (closed)"]] },
  { key: "welcome", label: "Welcome subscribed newcomers", bool: true },
  { key: "restore_on_rejoin", label: "Lift restriction on channel rejoin", bool: true },
  { key: "language", label: "Language", choices: [["en", "English"], ["es", "Español"]] },
  { key: "allowlist", label: "Allowlist (user ids)", list: true, hint: "comma-separated" },
];

function shown(value) {
  if (Array.isArray(value)) return value.length ? value.join(", ") : "none";
  if (value === true) return "yes";
  if (value === false) return "no";
  return String(value);
}

function control(spec, override, inherited) {
  const inherit = [["", `Inherit (${shown(inherited)})`]];
  if (spec.choices) return select([...inherit, ...spec.choices], override);
  if (spec.bool) return select([...inherit, ["true", "Yes"], ["false", "No"]], override === undefined ? "" : String(override));
  const input = h("input", { type: spec.number ? "number" : "text", min: spec.number ? 0 : undefined, placeholder: `inherit (${shown(inherited)})` });
  if (override !== undefined) input.value = spec.list ? override.join(", ") : String(override);
  return input;
}

/// The layer the form describes: only the keys given a value.
function collect(form) {
  const layer = {};
  for (const spec of POLICY_FIELDS) {
    const raw = form.elements[`policy-${spec.key}`].value.trim();
    if (raw === "") continue;
    if (spec.number) layer[spec.key] = Number(raw);
    else if (spec.bool) layer[spec.key] = raw === "true";
    else if (spec.list) layer[spec.key] = raw.split(/[\s,]+/).filter(Boolean).map(Number);
    else layer[spec.key] = raw;
  }
  return layer;
}

/// A form over `overrides`, each key falling back to `inherited[key]`; `save(layer)` stores it.
export function policyForm(title, overrides, inherited, save) {
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "panel", "aria-label": title },
    h("h2", {}, title),
    h("div", { class: "form-grid" }, POLICY_FIELDS.map((spec) =>
      field(`policy-${spec.key}`, spec.label, control(spec, overrides?.[spec.key], inherited?.[spec.key]), spec.hint))),
    error,
    h("button", { type: "submit", class: "primary" }, "Save policy"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const layer = collect(form);
    if (Object.values(layer).some((value) => Number.isNaN(value) || (Array.isArray(value) && value.some(Number.isNaN)))) {
      error.textContent = "Numbers only, please: seconds, counts and user ids are whole numbers.";
      return;
    }
    try {
      await save(layer);
    } catch (failure) {
      error.textContent = failure.message;
    }
  });
  return form;
}
