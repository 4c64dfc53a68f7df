// Sign-in. Two ways in:
// - a one-time link (`nezuko login-link` prints /login#token=…), used at once;
// - "Log in with Telegram" when a login bot is configured. This is the Login Widget's redirect
//   flow: oauth.telegram.org asks the user, then returns here with #tgAuthResult=<base64 JSON of
//   the signed fields>, which the server checks (POST /api/v1/auth/telegram). No Telegram script
//   runs in the page, so the dashboard keeps its strict content policy and works offline.

import { get, post, rememberCsrf } from "../api.js";
import { h } from "../dom.js";

/// The signed fields Telegram returned, or null.
function telegramResult(fragment) {
  const encoded = fragment.get("tgAuthResult");
  if (!encoded) return null;
  try {
    const padded = encoded.replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(padded), (c) => c.charCodeAt(0))));
  } catch {
    return false;
  }
}

function telegramButton(config) {
  if (!config.widget) return null;
  const back = `${location.origin}/login`;
  const url = new URL("https://oauth.telegram.org/auth");
  url.search = new URLSearchParams({ bot_id: config.widget.bot_id, origin: location.origin, embed: "0", request_access: "write", return_to: back });
  return h("p", {}, h("a", { class: "button primary telegram-login", href: url.toString(), rel: "noopener" }, "Log in with Telegram"));
}

export async function render(main, { signedIn }) {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const token = fragment.get("token");
  const widget = telegramResult(fragment);
  // Secrets leave the address bar before anything else happens.
  history.replaceState(null, "", "/login");
  const status = h("p", { class: "muted", role: "status" });
  const config = await get("/api/v1/auth/config").catch(() => ({ widget: null }));
  main.replaceChildren(h("section", { class: "login panel" },
    h("h1", {}, "Sign in to Nezuko"),
    status,
    telegramButton(config),
    h("p", {}, "Or, on the server, run ", h("code", {}, "nezuko login-link"), " and open the address it prints. Each link works once, for a few minutes.")));
  const attempt = async (path, body) => {
    status.textContent = "Signing in…";
    try {
      const session = await post(path, body);
      rememberCsrf(session.csrf_token);
      await signedIn();
    } catch (error) {
      status.textContent = error.message;
      status.className = "error";
    }
  };
  if (token) await attempt("/api/v1/auth/link", { token });
  else if (widget) await attempt("/api/v1/auth/telegram", widget);
  else if (widget === false) {
    status.textContent = "Telegram's answer could not be read; please try again.";
    status.className = "error";
  }
}
