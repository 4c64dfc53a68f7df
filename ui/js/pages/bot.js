// One bot: its state (live), uptime ticking, last error, restart history (every failure with its
// reason and time), groups and recent events; start, stop, restart; replace its token (the same
// bot, from @BotFather's /revoke); delete it after a confirmation.

import { get, api, post } from "../api.js";
import { h, time, duration, toast, confirmAction, navigate, table, field, onSubmit } from "../dom.js";
import { refreshOn } from "../events.js";
import { describe } from "../describe.js";
import { badge, lifecycleButtons } from "./bots.js";

function facts(bot) {
  const fact = (term, value) => [h("dt", {}, term), h("dd", {}, value ?? "—")];
  return h("dl", { class: "facts" },
    fact("Telegram id", String(bot.telegram_bot_id)),
    fact("Wanted", bot.desired_state),
    fact("State", badge(bot)),
    fact("Reason", bot.run_reason),
    fact("Last error", bot.last_error ? h("span", { class: "error", "data-last-error": "" }, bot.last_error) : null),
    fact("Restarts", String(bot.restart_count)),
    fact("Attempt", bot.attempt ? String(bot.attempt) : null),
    fact("Uptime", uptime(bot)),
    fact("Started", time(bot.started_at)),
    fact("Stopped", time(bot.stopped_at)),
    fact("Added", time(bot.created_at)));
}

/// The uptime, counting up each second while the page shows a running bot.
function uptime(bot) {
  const element = h("span", { "data-uptime": "" }, duration(bot.uptime_s));
  if (bot.uptime_s === null || bot.uptime_s === undefined) return element;
  const shownAt = Date.now();
  const tick = () => {
    if (!element.isConnected) return;
    element.textContent = duration(bot.uptime_s + Math.floor((Date.now() - shownAt) / 1000));
    setTimeout(tick, 1000);
  };
  setTimeout(tick, 1000);
  return element;
}

/// A transition's state as its badge would say it (a restart's steps read "restarting").
function historyState(step) {
  return badge({ run_state: step.state, run_reason_code: step.reason_code });
}

const FAILING = new Set(["backoff", "failed"]);
/// A step that is a failure: backoff, parked, or stopped because Telegram refused the token.
const failure = (step) => FAILING.has(step.state) || step.reason_code === "invalid_token";

function historyRows(history) {
  return history.map((step) => h("tr", { "data-history": step.state, class: failure(step) ? "failure" : "" },
    h("td", {}, h("time", {}, time(step.at))),
    h("td", {}, historyState(step)),
    h("td", {}, step.reason || "—",
      step.next_attempt_at ? h("div", { class: "muted" }, `attempt ${step.attempt}; next try at ${time(step.next_attempt_at)}`) : null)));
}

function groupRows(groups) {
  return groups.map((group) => h("tr", { "data-group": group.id },
    h("td", {}, h("a", { href: `/groups/${group.id}` }, group.title)),
    h("td", {}, group.enabled ? "enforcing" : "disabled"),
    h("td", {}, h("span", { class: `badge ${group.health}` }, group.health))));
}

function rotateForm(bot, refresh) {
  const input = h("input", { type: "password", autocomplete: "off", required: true, "aria-describedby": "rotate-error" });
  const error = h("p", { id: "rotate-error", class: "error", role: "alert" });
  const form = h("form", { class: "panel", "aria-label": "Replace the token" },
    h("h2", {}, "Replace the token"),
    h("p", { class: "muted" }, "After /revoke in @BotFather, paste the bot's new token. A token of another bot is refused."),
    field("new-token", "New token", input),
    error,
    h("button", { type: "submit", class: "primary" }, "Replace token"));
  onSubmit(form, error, async () => {
    await post(`/api/v1/bots/${bot.id}/token`, { token: input.value });
    input.value = "";
    await refresh();
  }, "Token replaced; the bot restarts with it");
  return form;
}

async function remove(bot, removing) {
  if (!(await confirmAction(`Delete @${bot.username} and its ${bot.group_count} groups? This cannot be undone.`, "Delete"))) return;
  // The bot stops before it is removed; its last events must not reload a page about to go.
  removing(true);
  try {
    await api("DELETE", `/api/v1/bots/${bot.id}`);
    toast(`Deleted @${bot.username}`);
    navigate("/bots");
  } catch (error) {
    removing(false);
    toast(error.message);
  }
}

export async function render(main, id) {
  const heading = h("h1");
  const summary = h("section", { class: "panel" });
  const groups = h("section", { class: "panel" });
  const history = h("section", { class: "panel", "aria-label": "Restart history" });
  const events = h("ul", { class: "feed", "aria-label": "Recent events", tabindex: "0" });
  const danger = h("section", { class: "panel" });
  let current = null;
  let removing = false;

  async function refresh() {
    const bot = await get(`/api/v1/bots/${id}`);
    current = bot;
    heading.replaceChildren(`${bot.display_name} `, h("span", { class: "muted" }, `@${bot.username}`));
    summary.replaceChildren(h("h2", {}, "Status"), facts(bot), h("div", { class: "stack" }, lifecycleButtons(bot, refresh)));
    const failures = bot.history.filter(failure).length;
    history.replaceChildren(h("h2", {}, "Restart history"),
      h("p", { class: "muted" }, failures ? `${failures} failure${failures === 1 ? "" : "s"} among the last ${bot.history.length} changes.` : "No failures among the recorded changes."),
      table("Restart history", ["Time", "State", "Why"], historyRows(bot.history), "No state changes recorded yet."));
    groups.replaceChildren(h("h2", {}, "Groups"),
      table("Groups of this bot", ["Group", "Enforcement", "Health"], groupRows(bot.groups), "This bot protects no group yet: add it to a group and send /protect @channel there."));
    events.replaceChildren(...bot.recent_events.map((event) => h("li", {}, h("time", {}, time(event.created_at)), describe(event))));
    if (!bot.recent_events.length) events.append(h("li", { class: "empty" }, "No events yet."));
  }
  await refresh();
  danger.replaceChildren(h("h2", {}, "Delete"),
    h("p", { class: "muted" }, "Stops the bot, then removes it with its groups and records."),
    h("button", { type: "button", class: "danger", onclick: () => remove(current, (on) => { removing = on; }) }, "Delete bot"));
  main.replaceChildren(h("p", {}, h("a", { href: "/bots" }, "← Bots")), heading,
    h("div", { class: "grid2" },
      h("div", { class: "stack" }, summary, history, groups),
      h("div", { class: "stack" }, h("section", { class: "panel" }, h("h2", {}, "Recent events"), events), rotateForm(current, refresh), danger)));

  return refreshOn((event) => event.bot_instance_id === id && !removing, () => (removing ? null : refresh()));
}
