// Channels: every channel groups can require, with how many groups require it; add one by its
// Telegram id (the bot must be an administrator there to see who leaves).

import { get, post } from "../api.js";
import { h, toast, table, field, onSubmit } from "../dom.js";

function row(channel) {
  return h("tr", { "data-channel": channel.id },
    h("td", {}, h("a", { href: `/channels/${channel.id}` }, channel.title)),
    h("td", {}, channel.username ? `@${channel.username}` : h("span", { class: "muted" }, "private")),
    h("td", {}, String(channel.chat_id)),
    h("td", {}, String(channel.group_count)));
}

function addForm(refresh) {
  const chatId = h("input", { type: "text", inputmode: "numeric", required: true, placeholder: "-1001234567890" });
  const title = h("input", { type: "text", required: true });
  const username = h("input", { type: "text", placeholder: "without @; empty for a private channel" });
  const invite = h("input", { type: "url", placeholder: "https://t.me/+…" });
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "panel", "aria-label": "Add a channel" }, h("h2", {}, "Add a channel"),
    h("div", { class: "form-grid" }, field("channel-chat-id", "Telegram id", chatId), field("channel-title", "Title", title),
      field("channel-username", "Username", username), field("channel-invite", "Invite link (private channels)", invite)),
    error, h("button", { type: "submit", class: "primary" }, "Add channel"));
  onSubmit(form, error, async () => {
    const name = username.value.trim().replace(/^@/, "");
    const channel = await post("/api/v1/channels", {
      chat_id: Number(chatId.value.trim()), title: title.value.trim(), username: name || null,
      invite_link: invite.value.trim() || null, is_private: !name,
    });
    form.reset();
    await refresh();
    return channel;
  }, (channel) => `Added ${channel.title}`);
  return form;
}

export async function render(main) {
  const list = h("section", { class: "panel" });
  async function refresh() {
    const channels = await get("/api/v1/channels");
    list.replaceChildren(table("Channels", ["Channel", "Username", "Telegram id", "Groups"], channels.items.map(row),
      "No channels yet: /protect @channel in a group adds one, or add one below."));
  }
  await refresh();
  main.replaceChildren(h("h1", {}, "Channels"), h("div", { class: "stack" }, list, addForm(refresh)));
}
