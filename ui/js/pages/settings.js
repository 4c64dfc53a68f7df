// Settings: the global policy defaults (over the built-in ones), the message texts per language
// (an empty box keeps the built-in text), alerts in Telegram (chat, sender, a test message), the
// signed-in account, and for the owner the admins.

import { get, api, post } from "../api.js";
import { h, time, toast, confirmAction, field, select, table, onSubmit } from "../dom.js";
import { policyForm } from "../policy.js";

/// The language the texts form last showed: kept across the re-render after a save.
let shownLanguage = null;

function textsForm(settings, refresh) {
  const languages = Object.keys(settings.texts);
  const language = select(languages, languages.includes(shownLanguage) ? shownLanguage : languages[0]);
  const boxes = h("div", { class: "form-grid" });
  const error = h("p", { class: "error", role: "alert" });
  const fill = () => {
    shownLanguage = language.value;
    const texts = settings.texts[language.value];
    boxes.replaceChildren(...settings.text_names.map((name) => {
      const box = h("textarea", { placeholder: texts.defaults[name] || "" });
      box.value = texts.overrides[name] || "";
      return field(`text-${name}`, name, box);
    }));
  };
  language.addEventListener("change", fill);
  fill();
  const form = h("form", { class: "panel", "aria-label": "Message texts" }, h("h2", {}, "Message texts"),
    h("p", { class: "muted" }, "Empty boxes use the built-in text shown in grey. Placeholders in braces, like {channels}, are filled in by the bot."),
    field("text-language", "Language", language), boxes, error, h("button", { type: "submit", class: "primary" }, "Save texts"));
  onSubmit(form, error, async () => {
    const overrides = {};
    for (const name of settings.text_names) {
      const value = form.elements[`text-${name}`].value;
      if (value.trim()) overrides[name] = value;
    }
    await api("PUT", `/api/v1/settings/texts/${language.value}`, overrides);
    await refresh();
  }, "Texts saved");
  return form;
}

/// Where alerts go and who sends them; a refused value is shown at its field.
async function alertsPanel(refresh) {
  const [alerts, bots] = await Promise.all([get("/api/v1/settings/alerts"), get("/api/v1/bots")]);
  const chat = h("input", { type: "text", inputmode: "numeric", placeholder: "-1001234567890", "aria-describedby": "alerts-chat-error" });
  chat.value = alerts.chat_id ?? "";
  const senders = [["login", "the login bot"], ...bots.items.map((b) => [`@${b.username}`, `@${b.username}`])];
  if (!senders.some(([value]) => value === alerts.sender)) senders.push([alerts.sender, alerts.sender]);
  const sender = select(senders, alerts.sender);
  sender.setAttribute("aria-describedby", "alerts-sender-error");
  const errors = { chat_id: h("p", { id: "alerts-chat-error", class: "error", role: "alert" }), sender: h("p", { id: "alerts-sender-error", class: "error", role: "alert" }) };
  const controls = { chat_id: chat, sender };
  const error = h("p", { class: "error", role: "alert" });
  const clear = () => {
    for (const [name, control] of Object.entries(controls)) { errors[name].textContent = ""; control.removeAttribute("aria-invalid"); }
  };
  /// Runs `action`; the server's complaint about one field goes next to that field.
  const attempt = async (action) => {
    clear();
    error.textContent = "";
    try { await action(); } catch (failure) {
      const control = controls[failure.field];
      if (control) { errors[failure.field].textContent = failure.message; control.setAttribute("aria-invalid", "true"); control.focus(); }
      else error.textContent = failure.message;
      return false;
    }
    return true;
  };
  const config = () => ({ chat_id: chat.value.trim() === "" ? null : Number(chat.value.trim()), sender: sender.value });
  const form = h("form", { class: "panel", "aria-label": "Alerts in Telegram" }, h("h2", {}, "Alerts in Telegram"),
    h("p", { class: "muted" }, "Nezuko tells this chat when a bot fails or keeps restarting, a token is revoked, a group loses a permission or a node is lost, and again when it clears. Add the sender to the chat first."),
    h("div", { class: "field" }, h("label", { for: "alerts-chat" }, "Chat id"), Object.assign(chat, { id: "alerts-chat", name: "alerts-chat" }), errors.chat_id,
      h("div", { class: "muted" }, "Empty: no alerts. A group's id is negative.")),
    h("div", { class: "field" }, h("label", { for: "alerts-sender" }, "Sender"), Object.assign(sender, { id: "alerts-sender", name: "alerts-sender" }), errors.sender),
    alerts.undelivered ? h("p", { class: "error", role: "alert", "data-alerts-undelivered": "" }, `The last alert could not be delivered: ${alerts.undelivered}`) : null,
    h("p", { class: "muted", "data-alerts-source": alerts.source }, alerts.source === "dashboard" ? "Chosen here." : "From the configuration (alerts.chat_id, alerts.sender) until saved here."),
    error,
    h("div", { class: "actions" },
      h("button", { type: "submit", class: "primary" }, "Save alerts"),
      h("button", { type: "button", onclick: async () => {
        // What is typed is tested, saved or not: test, then save.
        if (await attempt(() => post("/api/v1/settings/alerts/test", config()))) toast("Test message sent");
      } }, "Send a test")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (Number.isNaN(config().chat_id)) {
      errors.chat_id.textContent = "A chat id is a whole number, like -1001234567890.";
      chat.setAttribute("aria-invalid", "true");
      return;
    }
    if (await attempt(() => api("PUT", "/api/v1/settings/alerts", config()))) {
      toast("Alert settings saved");
      await refresh();
    }
  });
  return form;
}

function account(me) {
  return h("section", { class: "panel", "aria-label": "Your account" }, h("h2", {}, "Your account"),
    h("dl", { class: "facts" },
      h("dt", {}, "Name"), h("dd", { "data-account-name": "" }, me.name),
      h("dt", {}, "Telegram id"), h("dd", {}, String(me.telegram_user_id)),
      h("dt", {}, "Role"), h("dd", {}, me.is_owner ? "owner" : "admin"),
      h("dt", {}, "Session ends"), h("dd", {}, time(me.expires_at))));
}

async function adminsPanel(refresh) {
  const admins = await get("/api/v1/admins");
  const remove = async (admin) => {
    if (!(await confirmAction(`Remove ${admin.display_name}? Their sessions end at once.`, "Remove"))) return;
    try { await api("DELETE", `/api/v1/admins/${admin.telegram_user_id}`); toast("Admin removed"); } catch (error) { toast(error.message); }
    await refresh();
  };
  const id = h("input", { type: "text", inputmode: "numeric", required: true });
  const name = h("input", { type: "text", required: true });
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "filters", "aria-label": "Add an admin" },
    field("admin-id", "Telegram user id", id), field("admin-name", "Name", name), h("button", { type: "submit" }, "Add admin"));
  onSubmit(form, error, async () => {
    await post("/api/v1/admins", { telegram_user_id: Number(id.value.trim()), display_name: name.value.trim() });
    await refresh();
  }, "Admin added");
  const rows = admins.items.map((admin) => h("tr", {},
    h("td", {}, admin.display_name), h("td", {}, String(admin.telegram_user_id)), h("td", {}, time(admin.created_at)),
    h("td", {}, h("button", { type: "button", class: "danger", onclick: () => remove(admin) }, "Remove"))));
  return h("section", { class: "panel" }, h("h2", {}, "Admins"),
    h("p", { class: "muted" }, "Besides you (the owner), these Telegram users may sign in."),
    table("Admins", ["Name", "Telegram id", "Added", ""], rows, "No other admins."), form, error);
}

export async function render(main) {
  const root = h("div");
  main.replaceChildren(h("h1", {}, "Settings"), root);
  async function refresh() {
    const [settings, me] = await Promise.all([get("/api/v1/settings"), get("/api/v1/auth/me")]);
    const defaults = policyForm("Policy defaults", settings.policy.defaults, settings.policy.built_in, async (layer) => {
      await api("PUT", "/api/v1/settings/policy", layer);
      await refresh();
      toast("Defaults saved; groups without their own value use them at once");
    });
    root.replaceChildren(h("div", { class: "grid2" },
      h("div", { class: "stack" }, defaults, account(me), me.is_owner ? await adminsPanel(refresh) : null),
      h("div", { class: "stack" }, await alertsPanel(refresh), textsForm(settings, refresh))));
  }
  await refresh();
}
