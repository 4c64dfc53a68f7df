// Overview: what needs attention (bots failed, looping or with an invalid token, groups
// degraded, nodes lost), stat cards, bots by state, the nodes and their bots, the verification outcomes of the
// last day, and the live activity feed. Events refresh the numbers without a reload.

import { get } from "../api.js";
import { barChart } from "../chart.js";
import { h, time, duration } from "../dom.js";
import { subscribe, refreshOn } from "../events.js";
import { describe } from "../describe.js";
import { outcomeBars } from "../outcomes.js";
import { words } from "../vocabulary.js";

/// Every kind the server publishes but log records, which have their own page.
function feedKinds() {
  return words().event_kinds.filter((kind) => kind !== "log").join(",");
}

/// The processes sharing the database: host, role, how many bots each runs, heartbeat.
function nodesPanel(nodes) {
  const rows = nodes.items.map((n) => h("tr", { "data-node": n.id, class: n.alive ? "" : "muted" },
    h("td", {}, `${n.host} · ${n.pid}`, n.this ? h("span", { class: "muted" }, " (this one)") : null),
    h("td", {}, n.role),
    h("td", {}, String(n.bots)),
    h("td", {}, n.alive ? `${Math.max(0, Math.round((Date.now() - n.heartbeat_at) / 1000))} s ago` : "gone")));
  return [h("h2", {}, "Nodes"), h("table", {},
    h("thead", {}, h("tr", {}, ["Node", "Role", "Bots", "Heartbeat"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows))];
}

function feedItem(event) {
  return h("li", { "data-event": event.id || null }, h("time", {}, time(event.created_at)), describe(event));
}

/// The supervision tree's own services that are not running (the Registry, the Broadcaster): each
/// with why and when it is tried again. Nothing when all run.
function servicesPanel(services) {
  const down = services.filter((s) => !s.running);
  if (!down.length) return [];
  return [h("section", { class: "panel alert", role: "alert", "data-services": "down" },
    h("h2", {}, "Not running"),
    h("ul", {}, down.map((s) => h("li", { "data-service": s.service },
      h("strong", {}, s.service), ` ${s.last_error || "starting"}`,
      s.next_attempt_at ? h("span", { class: "muted" }, ` · tried again at ${time(s.next_attempt_at)}`) : null))))];
}

const ATTENTION_WORDS = {
  bot_failed: "failed", invalid_token: "invalid token", bot_looping: "restarting repeatedly",
  group_degraded: "degraded", node_lost: "node lost", alerts_undelivered: "undelivered",
};

/// What needs a person, each linking to the page that shows it; a calm line when nothing does.
function attentionPanel(attention) {
  if (!attention.items.length) {
    return h("section", { class: "panel", "data-attention": "none", "aria-label": "Needs attention" },
      h("h2", {}, "Needs attention"), h("p", { class: "muted" }, "Nothing needs attention."));
  }
  return h("section", { class: "panel alert", "data-attention": "some", "aria-label": "Needs attention" },
    h("h2", {}, `Needs attention (${attention.items.length})`),
    h("ul", { class: "attention" }, attention.items.map((item) => h("li", { "data-attention-key": item.key },
      h("span", { class: `badge ${item.kind.replace("_", "-")}` }, ATTENTION_WORDS[item.kind] || item.kind), " ",
      h("a", { href: item.path }, item.subject), " ", h("span", {}, item.detail),
      h("span", { class: "muted" }, ` · since ${time(item.since)}`)))));
}

export async function render(main) {
  const attention = h("div", {});
  const alerts = h("div", {});
  const cards = h("div", { class: "cards" });
  const states = h("div", { class: "panel" });
  const chart = h("div", { class: "panel" });
  const nodes = h("div", { class: "panel", "aria-label": "Nodes" });
  const feed = h("ul", { class: "feed", "aria-label": "Activity", tabindex: "0" });
  main.replaceChildren(h("h1", {}, "Overview"), alerts, attention, cards,
    h("div", { class: "grid2" }, h("section", { class: "panel" }, h("h2", {}, "Live activity"), feed),
      h("div", {}, states, nodes, chart)));

  async function refresh() {
    const [stats, outcomes, nodeList, needs] = await Promise.all([get("/api/v1/stats"), get("/api/v1/charts/verification_outcomes?period=24h"), get("/api/v1/nodes"), get("/api/v1/attention")]);
    attention.replaceChildren(attentionPanel(needs));
    nodes.replaceChildren(...nodesPanel(nodeList));
    alerts.replaceChildren(...servicesPanel(stats.services));
    const card = (label, value) => h("div", { class: "card" }, h("div", { class: "muted" }, label), h("div", { class: "value", "data-stat": label }, value));
    const rate = (r) => (r === null || r === undefined ? "—" : `${Math.round(r * 1000) / 10} %`);
    cards.replaceChildren(
      card("Groups", stats.groups.total), card("Channels", stats.channels), card("Bots", stats.bots.total),
      card("Verifications today", stats.verifications.today), card("This week", stats.verifications.week),
      card("Success rate (7d)", rate(stats.success_rate_7d)), card("Cache hit rate (7d)", rate(stats.cache_hit_rate_7d)),
      card("Uptime", duration(stats.uptime_s)));
    const byState = Object.entries(stats.bots.by_state);
    states.replaceChildren(h("h2", {}, "Bots by state"), byState.length
      ? h("ul", {}, byState.map(([state, count]) => h("li", {}, h("span", { class: `badge ${state}` }, state), ` ${count}`)))
      : h("p", { class: "empty" }, "No bots yet. Add one on the Bots page."));
    const items = outcomeBars(outcomes.data);
    chart.replaceChildren(h("h2", {}, "Verifications, last 24 hours"), items.length
      ? barChart("Verification outcomes in the last 24 hours", items)
      : h("p", { class: "empty" }, "No verifications in the last 24 hours."));
  }

  // Log records have their own page; the feed is what the platform did.
  const recent = await get(`/api/v1/activity?limit=30&type=${feedKinds()}`);
  feed.replaceChildren(...recent.items.map(feedItem));
  if (!recent.items.length) feed.append(h("li", { class: "empty" }, "Nothing has happened yet."));
  await refresh();

  // The stream may replay an event the first page of the feed already holds.
  const fresh = (event) => event.kind !== "log" && !(event.id && feed.querySelector(`[data-event="${event.id}"]`));
  const unsubscribe = subscribe((event) => {
    if (!fresh(event)) return;
    feed.querySelector(".empty")?.remove();
    feed.prepend(feedItem(event));
    while (feed.children.length > 100) feed.lastChild.remove();
  });
  // Many events in a burst become one refresh.
  const stopRefreshing = refreshOn((event) => event.kind !== "log", refresh, 500);
  // A node that stops heartbeating sends no event: its loss shows within 15 s anyway.
  const timer = setInterval(() => refresh().catch(() => {}), 15000);
  return () => { unsubscribe(); stopRefreshing(); clearInterval(timer); };
}
