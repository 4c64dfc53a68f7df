// Audit: who changed what, when, from where, with the value before and after; filtered by action,
// kind of target and actor, paged back with "Older", and downloadable as CSV with the same filters.

import { get } from "../api.js";
import { h, time, field, select } from "../dom.js";
import { refreshOn } from "../events.js";
import { words } from "../vocabulary.js";


function compact(value) {
  return value === null || value === undefined ? "" : JSON.stringify(value);
}

function row(entry) {
  return h("tr", { "data-audit": entry.id, "data-action": entry.action },
    h("td", {}, h("time", {}, time(entry.created_at))),
    h("td", {}, entry.actor_name, entry.actor_id ? h("div", { class: "muted" }, String(entry.actor_id)) : null),
    h("td", {}, h("code", {}, entry.action)),
    h("td", {}, `${entry.target_type} ${entry.target_id ?? ""}`),
    h("td", { class: "log-line" }, entry.before !== null ? h("div", {}, "before: ", compact(entry.before)) : null,
      entry.after !== null ? h("div", {}, "after: ", compact(entry.after)) : null),
    h("td", {}, entry.ip || "—"));
}

export async function render(main) {
  const action = h("input", { type: "text", placeholder: "bot.stop, group.policy…" });
  const target = select([["", "Any"], ...words().audit_targets], "");
  const actor = h("input", { type: "text", inputmode: "numeric", placeholder: "Telegram user id, or cli" });
  const download = h("a", { href: "/api/v1/audit.csv", download: "nezuko-audit.csv", class: "button" }, "Download CSV");
  const form = h("form", { class: "filters panel", role: "search", "aria-label": "Filter the audit log" },
    field("audit-action", "Action", action), field("audit-target", "Target", target), field("audit-actor", "Actor", actor),
    h("button", { type: "submit" }, "Apply"), download);
  const body = h("tbody");
  const older = h("button", { type: "button" }, "Older");
  const status = h("p", { class: "error", role: "alert" });
  main.replaceChildren(h("h1", {}, "Audit log"), h("div", { class: "stack" }, form, status,
    h("section", { class: "panel" }, h("div", { class: "table-wrap" }, h("table", { "aria-label": "Audit entries" },
      h("thead", {}, h("tr", {}, ["Time", "Who", "Action", "Target", "Change", "Address"].map((t) => h("th", { scope: "col" }, t)))), body)),
    h("div", { class: "pager" }, older))));

  let cursor = null;
  const filters = () => {
    const params = new URLSearchParams();
    if (action.value.trim()) params.set("action", action.value.trim());
    if (target.value) params.set("target_type", target.value);
    if (actor.value.trim()) params.set("actor", actor.value.trim());
    return params;
  };
  async function load(before) {
    status.textContent = "";
    const params = filters();
    download.href = `/api/v1/audit.csv${params.size ? `?${params}` : ""}`;
    params.set("limit", 50);
    if (before) params.set("before", before);
    try {
      const page = await get(`/api/v1/audit?${params}`);
      if (!before) body.replaceChildren();
      body.append(...page.items.map(row));
      if (!body.children.length) body.append(h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No audit entries match.")));
      cursor = page.next_cursor;
      older.disabled = !cursor;
    } catch (error) {
      status.textContent = error.message;
    }
  }
  form.addEventListener("submit", (event) => { event.preventDefault(); load(); });
  target.addEventListener("change", () => load());
  older.addEventListener("click", () => load(cursor));
  await load();
  return refreshOn((event) => event.kind === "audit", () => load());
}
