// Logs: the service's stored records, newest first, filtered by level, text, module and bot, paged back
// with "Older"; new records matching the filters arrive live over the event stream.

import { get } from "../api.js";
import { h, time, field, select } from "../dom.js";
import { subscribe } from "../events.js";

const LEVELS = ["trace", "debug", "info", "warn", "error"];

function line(record) {
  return h("tr", { class: "log-line", "data-level": record.level },
    h("td", {}, h("time", {}, time(record.created_at))),
    h("td", {}, h("span", { class: `level ${record.level}` }, record.level)),
    h("td", {}, record.target),
    h("td", {}, record.message,
      record.fields && Object.keys(record.fields).length ? h("div", { class: "muted" }, Object.entries(record.fields).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(" ")) : null));
}

export async function render(main) {
  const level = select(LEVELS.map((l) => [l, `${l} and above`]), "info");
  const text = h("input", { type: "search", placeholder: "part of the message" });
  const target = h("input", { type: "text", placeholder: "nezuko::enforce" });
  const bots = await get("/api/v1/bots");
  const wanted = new URLSearchParams(location.search).get("bot");
  const bot = select([["", "every bot"], ...bots.items.map((b) => [String(b.id), `@${b.username}`])], wanted || "");
  const live = h("input", { type: "checkbox", checked: true });
  const form = h("form", { class: "filters panel", role: "search", "aria-label": "Filter logs" },
    field("log-level", "Level", level), field("log-text", "Text", text), field("log-target", "Module", target), field("log-bot", "Bot", bot),
    h("div", { class: "field" }, h("label", { for: "log-live" }, "Live tail"), Object.assign(live, { id: "log-live" })),
    h("button", { type: "submit" }, "Apply"));
  const body = h("tbody");
  const older = h("button", { type: "button" }, "Older");
  const status = h("span", { class: "muted", "aria-live": "polite" });
  main.replaceChildren(h("h1", {}, "Logs"), h("div", { class: "stack" }, form,
    h("section", { class: "panel" }, h("div", { class: "table-wrap" }, h("table", { "aria-label": "Log records" },
      h("thead", {}, h("tr", {}, ["Time", "Level", "Module", "Message"].map((t) => h("th", { scope: "col" }, t)))), body)),
    h("div", { class: "pager" }, status, older))));

  let cursor = null;
  const query = (before) => {
    const params = new URLSearchParams({ min_level: level.value, limit: 50 });
    if (text.value.trim()) params.set("text", text.value.trim());
    if (target.value.trim()) params.set("target", target.value.trim());
    if (bot.value) params.set("bot", bot.value);
    if (before) params.set("before", before);
    return params;
  };
  async function load(before) {
    body.dataset.loading = "true";
    const page = await get(`/api/v1/logs?${query(before)}`).finally(() => delete body.dataset.loading);
    if (!before) body.replaceChildren();
    body.querySelector(".empty-row")?.remove();
    body.append(...page.items.map(line));
    if (!body.children.length) body.append(h("tr", { class: "empty-row" }, h("td", { colspan: 4, class: "empty" }, "No log records match.")));
    cursor = page.next_cursor;
    older.disabled = !cursor;
    status.textContent = `${body.querySelectorAll(".log-line").length} records shown`;
  }
  const reload = () => load().catch((error) => { status.textContent = error.message; });
  form.addEventListener("submit", (event) => { event.preventDefault(); reload(); });
  level.addEventListener("change", reload);
  bot.addEventListener("change", reload);
  older.addEventListener("click", () => load(cursor).catch((error) => { status.textContent = error.message; }));
  await load();

  // Live records are filtered here the way the server filters history.
  const matches = (record) => LEVELS.indexOf(record.level) >= LEVELS.indexOf(level.value)
    && (!text.value.trim() || record.message.toLowerCase().includes(text.value.trim().toLowerCase()))
    && (!target.value.trim() || record.target === target.value.trim() || record.target.startsWith(`${target.value.trim()}::`));
  return subscribe((event) => {
    if (event.kind !== "log" || !live.checked) return;
    if (bot.value && String(event.bot_instance_id ?? "") !== bot.value) return;
    const record = event.payload || {};
    if (!matches(record)) return;
    body.querySelector(".empty-row")?.remove();
    body.prepend(line(record));
    while (body.children.length > 500) body.lastChild.remove();
  });
}
