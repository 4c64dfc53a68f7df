// The dashboard's entry: who is signed in, which page the address names, the theme.

import { get, post, rememberCsrf, ApiError } from "./api.js";
import { connect, disconnect } from "./events.js";
import { h } from "./dom.js";
import * as login from "./pages/login.js";
import * as overview from "./pages/overview.js";
import * as bots from "./pages/bots.js";

const pages = { "/": overview, "/bots": bots };
let cleanup = null;

function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
}

function initialTheme() {
  return localStorage.getItem("nezuko.theme") || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
}

async function show() {
  cleanup?.();
  cleanup = null;
  const main = document.getElementById("main");
  if (location.pathname === "/login") {
    document.getElementById("nav").hidden = true;
    await login.render(main, { signedIn: () => { history.pushState(null, "", "/"); return start(); } });
    return;
  }
  const page = pages[location.pathname];
  for (const link of document.querySelectorAll("#nav a")) {
    link.toggleAttribute("aria-current", link.getAttribute("href") === location.pathname);
    if (link.hasAttribute("aria-current")) link.setAttribute("aria-current", "page");
  }
  if (!page) {
    main.replaceChildren(h("h1", {}, "Not found"), h("p", {}, "There is no page here. ", h("a", { href: "/" }, "Go to the overview.")));
    return;
  }
  try {
    cleanup = (await page.render(main)) || null;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return goToLogin();
    main.replaceChildren(h("h1", {}, "Something went wrong"), h("p", { class: "error" }, error.message));
  }
}

function goToLogin() {
  disconnect();
  history.replaceState(null, "", "/login");
  return show();
}

async function start() {
  try {
    const me = await get("/api/v1/auth/me");
    rememberCsrf(me.csrf_token);
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) return goToLogin();
    throw error;
  }
  document.getElementById("nav").hidden = false;
  document.getElementById("logout").hidden = false;
  connect();
  await show();
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[href^='/']");
  if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return;
  event.preventDefault();
  history.pushState(null, "", link.getAttribute("href"));
  show();
});
window.addEventListener("popstate", show);

document.getElementById("theme").addEventListener("click", () => {
  const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
  localStorage.setItem("nezuko.theme", next);
  applyTheme(next);
});
document.getElementById("logout").addEventListener("click", async () => {
  await post("/api/v1/auth/logout").catch(() => {});
  rememberCsrf("");
  document.getElementById("logout").hidden = true;
  goToLogin();
});

applyTheme(initialTheme());
if (location.pathname === "/login") show(); else start();
