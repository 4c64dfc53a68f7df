// One channel: its details (editable) and the groups that require it; removing it stops every
// requirement of it.

import { get, api } from "../api.js";
import { h, time, toast, confirmAction, navigate, table, field, onSubmit } from "../dom.js";

function editForm(channel, refresh) {
  const title = h("input", { type: "text", required: true, value: channel.title });
  const username = h("input", { type: "text", value: channel.username || "", placeholder: "empty for a private channel" });
  const invite = h("input", { type: "url", value: channel.invite_link || "" });
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "panel", "aria-label": "Edit the channel" }, h("h2", {}, "Details"),
    field("channel-title", "Title", title), field("channel-username", "Username", username),
    field("channel-invite", "Invite link", invite), error, h("button", { type: "submit", class: "primary" }, "Save"));
  onSubmit(form, error, async () => {
    const name = username.value.trim().replace(/^@/, "");
    await api("PATCH", `/api/v1/channels/${channel.id}`, {
      title: title.value.trim(), username: name || null, invite_link: invite.value.trim() || null, is_private: !name,
    });
    await refresh();
  }, "Channel saved");
  return form;
}

export async function render(main, id) {
  const root = h("div");
  main.replaceChildren(h("p", {}, h("a", { href: "/channels" }, "← Channels")), root);
  async function refresh() {
    const channel = await get(`/api/v1/channels/${id}`);
    const remove = async () => {
      if (!(await confirmAction(`Remove ${channel.title}? ${channel.groups.length} groups stop requiring it.`, "Remove"))) return;
      try { await api("DELETE", `/api/v1/channels/${id}`); toast(`Removed ${channel.title}`); navigate("/channels"); } catch (error) { toast(error.message); }
    };
    const rows = channel.groups.map((group) => h("tr", { "data-group": group.id },
      h("td", {}, h("a", { href: `/groups/${group.id}` }, group.title)),
      h("td", {}, group.enabled ? "enforcing" : "disabled"),
      h("td", {}, h("span", { class: `badge ${group.health}` }, group.health))));
    root.replaceChildren(h("h1", {}, channel.title, channel.username ? h("span", { class: "muted" }, ` @${channel.username}`) : null),
      h("div", { class: "grid2" },
        h("div", { class: "stack" },
          h("section", { class: "panel" }, h("h2", {}, "Required by"), table("Groups requiring this channel", ["Group", "Enforcement", "Health"], rows, "No group requires this channel.")),
          h("section", { class: "panel" }, h("dl", { class: "facts" },
            h("dt", {}, "Telegram id"), h("dd", {}, String(channel.chat_id)),
            h("dt", {}, "Private"), h("dd", {}, channel.is_private ? "yes" : "no"),
            h("dt", {}, "Added"), h("dd", {}, time(channel.created_at))))),
        h("div", { class: "stack" }, editForm(channel, refresh),
          h("section", { class: "panel" }, h("h2", {}, "Remove"), h("button", { type: "button", class: "danger", onclick: remove }, "Remove channel")))));
  }
  await refresh();
}
