// The dashboard's entry: who is signed in, which page the address names, the theme.

import { get, post, rememberCsrf, ApiError } from "./api.js";
import { connect, disconnect } from "./events.js";
import { loadVocabulary } from "./vocabulary.js";
import { h } from "./dom.js";
import { words } from "./vocabulary.js";
import * as login from "./pages/login.js";

/// The page for the current address from the server's page table (`pages` in the vocabulary:
/// address with ":id" for a number, the script under pages/, the section), or null.
function route(path) {
  for (const { path: pattern, module, section } of words().pages) {
    if (module === "login") continue;
    const match = new RegExp(`^${pattern.replace(":id", "(\\d+)")}$`).exec(path);
    if (match) return { module, section, id: match[1] ? Number(match[1]) : undefined };
  }
  return null;
}
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
    // Signed out (or about to be): nothing here but signing in, also after a session ran out.
    document.getElementById("nav").hidden = true;
    document.getElementById("logout").hidden = true;
    await login.render(main, { signedIn: () => { history.pushState(null, "", "/"); return start(); } });
    return;
  }
  const found = route(location.pathname);
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.getAttribute("href") === found?.section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!found) return notFound(main, "There is no page here.");
  try {
    const page = await import(`./pages/${found.module}.js`);
    cleanup = (await page.render(main, found.id)) || null;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return goToLogin();
    // A page of something that does not exist (a deleted bot's address, a mistyped id).
    if (error instanceof ApiError && error.status === 404) return notFound(main, `${error.message}.`);
    main.replaceChildren(h("h1", {}, "Something went wrong"), h("p", { class: "error", role: "alert" }, error.message));
  }
}

/// The dashboard's own not-found page, saying what is missing.
function notFound(main, what) {
  main.replaceChildren(h("h1", { "data-not-found": "" }, "Not found"),
    h("p", {}, what, " ", h("a", { href: "/" }, "Go to the overview.")));
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
  await loadVocabulary();
  document.getElementById("nav").hidden = false;
  document.getElementById("logout").hidden = false;
  // The stream replays from the newest stored event, so nothing between this and its opening is lost.
  const latest = await get("/api/v1/activity?limit=1").catch(() => null);
  connect(latest?.items?.[0]?.id);
  await show();
}

document.addEventListener("click", (event) => {
  // In-app links only: downloads and API addresses are the browser's to follow.
  const link = event.target.closest("a[href^='/']:not([download]):not([href^='/api/'])");
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
