// One line for an event, as the activity feeds show it: text, with a verification's outcome in
// the colour the charts give it.

import { outcomeWord } from "./outcomes.js";

export function describe(event) {
  const p = event.payload || {};
  switch (event.kind) {
    case "bot_status": return `bot ${event.bot_instance_id} is ${p.state}${p.reason ? ` (${p.reason})` : ""}`;
    case "verification": return [`user ${p.user_id}: `, outcomeWord(p.outcome), ` in group ${p.group_id ?? "?"}`];
    case "member_join": return `user ${p.user_id} joined group ${p.group_id ?? p.chat_id ?? "?"}`;
    case "member_leave": return `user ${p.user_id} left ${p.channel_id ?? p.chat_id ?? "a channel"}`;
    case "audit": return `${p.actor_name}: ${p.action} ${p.target_type} ${p.target_id ?? ""}`;
    case "health": return `group ${p.group_id ?? "?"} health: ${p.health ?? p.status ?? "changed"}`;
    case "log": return `${p.level}: ${p.message}`;
    case "node": return p.change === "gone"
      ? `node ${p.node} stopped answering; its bots move to the other nodes`
      : `node ${p.node} runs ${p.bots.length} more bots${p.from ? ` (from node ${p.from})` : ""}`;
    case "activity": return `${(p.action || "activity").replaceAll("_", " ")}${p.title ? `: ${p.title}` : p.chat_id ? ` (chat ${p.chat_id})` : ""}`;
    default: return `${event.kind}`;
  }
}
