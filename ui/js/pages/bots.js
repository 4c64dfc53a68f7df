// Bots: every bot with a live state badge, restart count, uptime and the node that runs it; add a
// bot (errors shown at the field); start, stop and restart behind a confirmation. Badges follow
// `bot_status` events, the node column `node` events.

import { get, post } from "../api.js";
import { h, duration, toast, confirmAction, onSubmit, labelCells } from "../dom.js";
import { refreshOn } from "../events.js";
import { words } from "../vocabulary.js";

/// Whether a reason code (`run_reason_code`) parks a bot until an admin starts it again.
function parks(code) {
  return words().reason_codes.some((reason) => reason.code === code && reason.parks);
}

/// The badge word for a bot: the run state, or its reason code when that says more. Decided from
/// the codes the server sends, never from the reason's text.
export function badgeOf(bot) {
  const code = bot.run_reason_code;
  if (bot.run_state === "stopped" && code === "invalid_token") return "invalid token";
  if (bot.run_state === "backoff" && code === "conflict") return "conflict";
  // A restart's stop and start read as one step until the bot runs again.
  if ((bot.run_state === "stopping" || bot.run_state === "starting") && code === "restarting") return "restarting";
  return bot.run_state;
}

export function badge(bot) {
  const word = badgeOf(bot);
  const element = h("span", { class: `badge ${word.replace(" ", "-")}`, "data-state": word }, word);
  if (bot.run_state === "backoff" && bot.next_attempt_at) {
    const tick = () => {
      const left = Math.max(0, Math.round((bot.next_attempt_at - Date.now()) / 1000));
      element.textContent = `${word} · retry in ${left}s`;
      if (left > 0 && element.isConnected) setTimeout(tick, 1000);
    };
    setTimeout(tick, 0);
  }
  if (bot.run_state === "failed" && bot.run_reason) element.title = bot.run_reason;
  return element;
}

export async function act(bot, what, refresh) {
  const verbs = { start: "Start", stop: "Stop", restart: "Restart" };
  if (!(await confirmAction(`${verbs[what]} @${bot.username}?`, verbs[what]))) return;
  try {
    const answer = await post(`/api/v1/bots/${bot.id}/${what}`);
    toast(answer.will);
  } catch (error) {
    toast(error.message);
  }
  await refresh();
}

/// Start, Stop and Restart for one bot, each enabled only when it would change something.
export function lifecycleButtons(bot, refresh) {
  const running = bot.desired_state === "enabled";
  const parked = bot.run_state === "failed" || parks(bot.run_reason_code);
  return h("div", { class: "actions" },
    h("button", { type: "button", disabled: running && !parked, onclick: () => act(bot, "start", refresh) }, "Start"),
    h("button", { type: "button", disabled: !running, onclick: () => act(bot, "stop", refresh) }, "Stop"),
    h("button", { type: "button", disabled: !running, onclick: () => act(bot, "restart", refresh) }, "Restart"));
}

const HEADINGS = ["Bot", "State", "Restarts", "Uptime", "Groups", "Node", "Actions"];

/// One bot's row; on a phone one card, each cell named after its heading.
function row(bot, refresh) {
  return labelCells(h("tr", { "data-bot": bot.id },
    h("td", {}, h("strong", {}, h("a", { href: `/bots/${bot.id}` }, bot.display_name)), h("div", { class: "muted" }, `@${bot.username}`)),
    h("td", {}, badge(bot), bot.run_state === "failed" && bot.run_reason ? h("div", { class: "error" }, bot.run_reason) : null),
    h("td", {}, String(bot.restart_count)),
    h("td", {}, duration(bot.uptime_s)),
    h("td", {}, String(bot.group_count)),
    h("td", { "data-node": bot.node?.id ?? "" }, bot.node ? `${bot.node.host} · ${bot.node.pid}` : "—"),
    h("td", {}, lifecycleButtons(bot, refresh))), HEADINGS);
}

function addForm(refresh) {
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true, "aria-describedby": "token-error" });
  const error = h("p", { id: "token-error", class: "error", role: "alert" });
  const form = h("form", { class: "panel", "aria-label": "Add a bot" },
    h("h2", {}, "Add a bot"),
    h("div", { class: "field" }, h("label", { for: "token" }, "Token from @BotFather"), input, error),
    h("button", { type: "submit", class: "primary" }, "Add bot"));
  onSubmit(form, error, async () => {
    const bot = await post("/api/v1/bots", { token: input.value });
    input.value = "";
    await refresh();
    return bot;
  }, (bot) => `Added @${bot.username}`);
  return form;
}

export async function render(main) {
  const body = h("tbody");
  const table = h("div", { class: "table-wrap panel" }, h("table", { class: "cards", "aria-label": "Bots" },
    h("thead", {}, h("tr", {}, HEADINGS.map((t) => h("th", { scope: "col" }, t)))),
    body));
  main.replaceChildren(h("h1", {}, "Bots"), h("div", { class: "stack" }, table, addForm(refresh)));

  async function refresh() {
    const bots = await get("/api/v1/bots");
    body.replaceChildren(...bots.items.map((bot) => row(bot, refresh)));
    if (!bots.items.length) body.append(h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No bots yet: add one below.")));
  }
  await refresh();
  return refreshOn((event) => event.kind === "bot_status" || event.kind === "node", refresh, 200);
}

