// Sign-in: a one-time link (`nezuko login-link` prints /login#token=…) is used at once; otherwise
// the page explains how to get one.

import { post, rememberCsrf } from "../api.js";
import { h } from "../dom.js";

export async function render(main, { signedIn }) {
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  // The token leaves the address bar before anything else happens.
  history.replaceState(null, "", "/login");
  const status = h("p", { class: "muted" });
  main.replaceChildren(h("section", { class: "login panel" },
    h("h1", {}, "Sign in to Nezuko"),
    status,
    h("p", {}, "On the server, run ", h("code", {}, "nezuko login-link"), " and open the address it prints. Each link works once, for a few minutes.")));
  if (!token) return;
  status.textContent = "Signing in…";
  try {
    const session = await post("/api/v1/auth/link", { token });
    rememberCsrf(session.csrf_token);
    await signedIn();
  } catch (error) {
    status.textContent = error.message;
    status.className = "error";
  }
}
