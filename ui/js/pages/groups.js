// Groups: search by title or username, filter by bot, enforcement and health, sort, and page
// through the results. The filters live in the address (?search=…&page=…) so a view can be shared
// and survives a reload.

import { get } from "../api.js";
import { h, time, table, field, select, navigate } from "../dom.js";

const PAGE_SIZE = 25;
// No member count: the API's `member_count` is never filled in (nothing asks Telegram for it), so
// neither a column nor a sort by it would say anything true.
const SORTS = [["title", "Title"], ["-created_at", "Newest"], ["health", "Health"]];

function readFilters() {
  const query = new URLSearchParams(location.search);
  return {
    search: query.get("search") || "", bot: query.get("bot") || "", enabled: query.get("enabled") || "",
    health: query.get("health") || "", sort: query.get("sort") || "title", offset: Number(query.get("offset")) || 0,
  };
}

function apiQuery(filters) {
  const query = new URLSearchParams({ sort: filters.sort, offset: filters.offset, limit: PAGE_SIZE });
  for (const key of ["search", "bot", "enabled", "health"]) if (filters[key]) query.set(key, filters[key]);
  return query;
}

function row(group, bots) {
  const bot = bots.find((b) => b.id === group.bot_instance_id);
  return h("tr", { "data-group": group.id },
    h("td", {}, h("a", { href: `/groups/${group.id}` }, group.title), group.username ? h("div", { class: "muted" }, `@${group.username}`) : null),
    h("td", {}, bot ? `@${bot.username}` : String(group.bot_instance_id)),
    h("td", {}, group.enabled ? "enforcing" : h("span", { class: "muted" }, "disabled")),
    h("td", {}, h("span", { class: `badge ${group.health}`, title: group.health_detail?.summary || "" }, group.health)),
    h("td", {}, time(group.created_at)));
}

export async function render(main) {
  const filters = readFilters();
  const bots = (await get("/api/v1/bots")).items;
  const search = h("input", { type: "search", value: filters.search, placeholder: "Title or @username" });
  const bot = select([["", "All bots"], ...bots.map((b) => [b.id, `@${b.username}`])], filters.bot);
  const enabled = select([["", "Any"], ["true", "Enforcing"], ["false", "Disabled"]], filters.enabled);
  const health = select([["", "Any"], ["ok", "OK"], ["degraded", "Degraded"], ["unknown", "Unknown"]], filters.health);
  const sort = select(SORTS, filters.sort);
  const form = h("form", { class: "filters panel", role: "search", "aria-label": "Filter groups" },
    field("group-search", "Search", search), field("group-bot", "Bot", bot), field("group-enabled", "Enforcement", enabled),
    field("group-health", "Health", health), field("group-sort", "Sort", sort),
    h("button", { type: "submit" }, "Apply"));
  const results = h("section", { class: "panel", "aria-live": "polite" });
  main.replaceChildren(h("h1", {}, "Groups"), h("div", { class: "stack" }, form, results));

  const go = (offset) => {
    const next = { search: search.value.trim(), bot: bot.value, enabled: enabled.value, health: health.value, sort: sort.value, offset };
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(next)) if (value && !(key === "sort" && value === "title")) query.set(key, value);
    navigate(`/groups${query.size ? `?${query}` : ""}`);
  };
  form.addEventListener("submit", (event) => { event.preventDefault(); go(0); });
  for (const control of [bot, enabled, health, sort]) control.addEventListener("change", () => go(0));

  const page = await get(`/api/v1/groups?${apiQuery(filters)}`);
  const { offset, total } = page.page;
  const first = total ? offset + 1 : 0, last = Math.min(offset + PAGE_SIZE, total);
  const filtered = filters.search || filters.bot || filters.enabled || filters.health;
  results.replaceChildren(
    table("Groups", ["Group", "Bot", "Enforcement", "Health", "Added"], page.items.map((g) => row(g, bots)),
      filtered ? "No group matches these filters." : "No groups yet: a bot adds a group when an admin sends /protect @channel there."),
    h("div", { class: "pager" },
      h("span", { class: "muted", "data-range": "" }, `${first}–${last} of ${total}`),
      h("button", { type: "button", disabled: offset === 0, onclick: () => go(Math.max(0, offset - PAGE_SIZE)) }, "Previous"),
      h("button", { type: "button", disabled: last >= total, onclick: () => go(offset + PAGE_SIZE) }, "Next")));
}
