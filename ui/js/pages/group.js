// One group: its required channels (link another, unlink one), policy editor, permission health
// with the exact fix for each problem, verification stats, pending join requests (approve or
// decline each), and enabling or disabling enforcement.

import { get, api, post } from "../api.js";
import { h, time, toast, confirmAction, table, field, select, onSubmit } from "../dom.js";
import { refreshOn } from "../events.js";
import { inOrder, outcomeWord } from "../outcomes.js";
import { policyForm } from "../policy.js";

function healthPanel(group) {
  const problems = group.health_detail?.problems || [];
  return h("section", { class: "panel", "aria-label": "Permission health" },
    h("h2", {}, "Permission health"),
    h("p", {}, h("span", { class: `badge ${group.health}`, "data-health": group.health }, group.health),
      h("span", { class: "muted" }, ` checked ${time(group.health_checked_at)}`)),
    problems.length
      ? [h("p", {}, "To fix:"), h("ul", { class: "health-fix" }, problems.map((problem) => h("li", {}, problem)))]
      : h("p", { class: "muted" }, group.health === "ok" ? "The bot has every right it needs here and in each channel." : "Not checked yet: the bot checks its rights at /protect and periodically."));
}

function statsPanel(stats) {
  const line = (label, counts) => h("div", {}, h("strong", {}, `${label}: ${counts.total}`),
    h("ul", {}, inOrder(Object.keys(counts.by_outcome)).map((outcome) => h("li", {}, outcomeWord(outcome), `: ${counts.by_outcome[outcome]}`))));
  return h("section", { class: "panel" }, h("h2", {}, "Verifications"),
    h("div", { class: "grid2" }, line("Last 24 hours", stats.verifications_24h), line("Last 7 days", stats.verifications_7d)));
}

function channelsPanel(group, allChannels, refresh) {
  const unlink = async (channel) => {
    if (!(await confirmAction(`Stop requiring ${channel.title} in ${group.title}?`, "Unlink"))) return;
    try {
      await api("DELETE", `/api/v1/groups/${group.id}/channels/${channel.id}`);
      toast(`${channel.title} is no longer required`);
    } catch (error) { toast(error.message); }
    await refresh();
  };
  const rows = group.channels.map((channel) => h("tr", { "data-channel": channel.id },
    h("td", {}, h("a", { href: `/channels/${channel.id}` }, channel.title)),
    h("td", {}, channel.username ? `@${channel.username}` : "private"),
    h("td", {}, h("button", { type: "button", class: "danger", "aria-label": `Unlink ${channel.title}`, onclick: () => unlink(channel) }, "Unlink"))));
  const linked = new Set(group.channels.map((c) => c.id));
  const candidates = allChannels.filter((c) => !linked.has(c.id));
  const choice = select(candidates.map((c) => [c.id, c.username ? `${c.title} (@${c.username})` : c.title]));
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "filters", "aria-label": "Link a channel" },
    field("link-channel", "Require another channel", choice),
    h("button", { type: "submit", disabled: !candidates.length }, "Link"));
  onSubmit(form, error, async () => {
    await post(`/api/v1/groups/${group.id}/channels`, { channel_id: Number(choice.value) });
    await refresh();
  }, "Channel linked");
  return h("section", { class: "panel" }, h("h2", {}, "Required channels"),
    table("Required channels", ["Channel", "Username", ""], rows, "No channel is required: members can speak freely."),
    candidates.length ? [form, error] : h("p", { class: "muted" }, "Every known channel is linked. Add channels on the Channels page."));
}

function joinRequestsPanel(group, requests, refresh) {
  const decide = async (request, verb) => {
    const question = verb === "approve" ? `Let ${request.name} into ${group.title}?` : `Decline ${request.name}'s request to join ${group.title}?`;
    if (!(await confirmAction(question, verb === "approve" ? "Approve" : "Decline"))) return;
    try {
      const ended = await post(`/api/v1/join-requests/${request.id}/${verb}`);
      toast(`${request.name}: ${ended.status}`);
    } catch (error) { toast(error.message); }
    await refresh();
  };
  const rows = requests.map((request) => h("tr", { "data-join-request": request.id },
    h("td", {}, request.name, h("span", { class: "muted" }, ` (${request.user_id})`)),
    h("td", {}, time(request.requested_at)),
    h("td", {}, request.guard_query ? "guard query" : request.told ? "told what to join" : "not reachable"),
    h("td", {},
      h("button", { type: "button", class: "primary", "aria-label": `Approve ${request.name}`, onclick: () => decide(request, "approve") }, "Approve"), " ",
      h("button", { type: "button", class: "danger", "aria-label": `Decline ${request.name}`, onclick: () => decide(request, "decline") }, "Decline"))));
  const mode = group.policy.effective?.join_requests;
  return h("section", { class: "panel", "aria-label": "Join requests" }, h("h2", {}, "Join requests"),
    h("p", { class: "muted" }, mode === "approve_subscribers"
      ? "Subscribers are approved at once; these are waiting to subscribe or for you."
      : "Nezuko leaves join requests to the administrators (policy join_requests: off)."),
    table("Pending join requests", ["Requester", "Asked", "State", ""], rows, "No join request is pending."));
}

export async function render(main, id) {
  const heading = h("h1");
  const left = h("div", { class: "stack" });
  const right = h("div", { class: "stack" });
  main.replaceChildren(h("p", {}, h("a", { href: "/groups" }, "← Groups")), heading, h("div", { class: "grid2" }, left, right));

  // `withPolicy` false (live updates) leaves the policy form alone, so an edit in progress survives.
  async function refresh(withPolicy = true) {
    // The global defaults matter only to the policy form.
    const [group, channels, requests, settings] = await Promise.all([
      get(`/api/v1/groups/${id}`), get("/api/v1/channels"), get(`/api/v1/groups/${id}/join-requests`),
      withPolicy ? get("/api/v1/settings") : null]);
    const toggle = async () => {
      const verb = group.enabled ? "disable" : "enable";
      const question = group.enabled ? `Stop enforcing in ${group.title}? Members will no longer be checked.` : `Enforce in ${group.title} again?`;
      if (!(await confirmAction(question, group.enabled ? "Disable" : "Enable"))) return;
      try { await post(`/api/v1/groups/${id}/${verb}`); toast(`Enforcement ${verb}d`); } catch (error) { toast(error.message); }
      await refresh(false);
    };
    heading.replaceChildren(h("span", {}, group.title, group.username ? h("span", { class: "muted" }, ` @${group.username}`) : null,
      group.chat_type === "channel" ? h("span", { class: "badge channel" }, "channel") : null));
    // A channel is guarded at the door: readers are checked when they ask to join, never muted.
    const enforcing = group.chat_type === "channel" ? "Join requests are approved for subscribers only." : "Members must subscribe before they speak.";
    // A live refresh (a health check, a change elsewhere) rebuilds this column: the channel an
    // admin was about to link stays chosen.
    const chosen = left.querySelector("#link-channel")?.value;
    left.replaceChildren(
      h("section", { class: "panel" }, h("h2", {}, "Enforcement"),
        h("p", { "data-enabled": String(group.enabled) }, group.enabled ? enforcing : "Disabled: nobody is checked here."),
        h("button", { type: "button", class: group.enabled ? "danger" : "primary", onclick: toggle }, group.enabled ? "Disable enforcement" : "Enable enforcement")),
      healthPanel(group), channelsPanel(group, channels.items, () => refresh(false)),
      joinRequestsPanel(group, requests.items, () => refresh(false)), statsPanel(group.stats));
    const select = left.querySelector("#link-channel");
    if (select && chosen && [...select.options].some((o) => o.value === chosen)) select.value = chosen;
    if (!withPolicy) return;
    const policy = policyForm("Policy", group.policy.overrides, settings.policy.effective, async (layer) => {
      await api("PUT", `/api/v1/groups/${id}/policy`, layer);
      await refresh();
      toast("Policy saved; the bot applies it at once");
    });
    right.replaceChildren(policy);
    if (group.policy.error) right.append(h("p", { class: "error" }, `The stored policy is not valid: ${group.policy.error}`));
  }
  await refresh();
  return refreshOn(
    (event) => (event.kind === "health" || event.kind === "settings_changed"
      || (event.kind === "verification" && String(event.payload?.outcome).startsWith("join_")))
      && event.payload?.group_id === id,
    () => refresh(false));
}
