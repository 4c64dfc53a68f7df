// Groups: search by title or username, filter by bot, enforcement and health, sort, and page
// through the results. The filters live in the address (?search=…&page=…) so a view can be shared
// and survives a reload. Below them, a supergroup or a channel is protected by naming it (a
// channel cannot be protected by /protect: channels send no commands).

import { get, post } from "../api.js";
import { h, time, table, field, select, navigate, onSubmit } from "../dom.js";

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
    h("td", {}, h("a", { href: `/groups/${group.id}` }, group.title),
      group.chat_type === "channel" ? h("span", { class: "badge channel", title: "A channel, guarded through join requests" }, "channel") : null,
      group.username ? h("div", { class: "muted" }, `@${group.username}`) : null),
    h("td", {}, bot ? `@${bot.username}` : String(group.bot_instance_id)),
    h("td", {}, group.enabled ? "enforcing" : h("span", { class: "muted" }, "disabled")),
    h("td", {}, h("span", { class: `badge ${group.health}`, title: group.health_detail?.summary || "" }, group.health)),
    h("td", {}, time(group.created_at)));
}

/// Protect a supergroup or a channel: the bot checks its rights there and in each channel first,
/// and the answer names every fix when one is missing.
function protectForm(bots) {
  const bot = select(bots.map((b) => [b.id, `@${b.username}`]));
  const chat = h("input", { required: true, placeholder: "@yourchannel or -1001234567890", autocomplete: "off" });
  const channels = h("input", { required: true, placeholder: "@news @another", autocomplete: "off" });
  const error = h("p", { id: "protect-error", class: "error", role: "alert" });
  const form = h("form", { class: "panel", "aria-label": "Protect a chat" },
    h("h2", {}, "Protect a group or channel"),
    field("protect-bot", "Bot", bot),
    field("protect-chat", "Group or channel", chat, "The bot must be an administrator there (in a channel, with Invite users via link)."),
    field("protect-channels", "Required channels", channels, "Separated by spaces; the bot must administer each."),
    error,
    h("button", { type: "submit", class: "primary", disabled: !bots.length }, "Protect"));
  onSubmit(form, error, async () => {
    const created = await post("/api/v1/groups", {
      bot_instance_id: Number(bot.value), chat: chat.value.trim(),
      channels: channels.value.split(/[\s,]+/).filter(Boolean),
    });
    navigate(`/groups/${created.group.id}`);
    return created;
  }, (created) => `Protected ${created.group.title}`);
  return form;
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
  main.replaceChildren(h("h1", {}, "Groups"), h("div", { class: "stack" }, form, results, protectForm(bots)));

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
      filtered ? "No group matches these filters." : "No groups yet: send /protect @channel in a group, or protect a group or channel below."),
    h("div", { class: "pager" },
      h("span", { class: "muted", "data-range": "" }, `${first}–${last} of ${total}`),
      h("button", { type: "button", disabled: offset === 0, onclick: () => go(Math.max(0, offset - PAGE_SIZE)) }, "Previous"),
      h("button", { type: "button", disabled: last >= total, onclick: () => go(offset + PAGE_SIZE) }, "Next")));
}
