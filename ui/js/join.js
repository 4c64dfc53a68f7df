// The join check page (`/join/<request id>`), opened by Telegram as a Mini App for a join request.
// Telegram puts the signed initData in the address (`#tgWebAppData=…`; `Telegram.WebApp.initData`
// where Telegram's script is loaded); the page sends it as is to be checked, so the server alone
// decides who the person is. Every text comes from the server in the group's language.

import { h } from "./dom.js";

const main = document.getElementById("join");
const id = (location.pathname.match(/^\/join\/(\d+)$/) || [])[1];

/// The initData Telegram gave this page, or "" when it was opened outside Telegram.
function initData() {
  const fromScript = window.Telegram?.WebApp?.initData;
  if (fromScript) return fromScript;
  return new URLSearchParams(location.hash.slice(1)).get("tgWebAppData") || "";
}

function show(...children) {
  main.replaceChildren(...children);
}

async function check() {
  const response = await fetch(`/api/v1/join-requests/${id}/check`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ init_data: initData() }),
  }).catch(() => null);
  if (!response) {
    show(h("p", { class: "error", role: "alert" }, "The server could not be reached; try again."), retry("Try again"));
    return;
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    show(h("p", { class: "error", role: "alert" }, body.detail || `Error ${response.status}`), retry("Try again"));
    return;
  }
  render(body);
}

function retry(label) {
  return h("button", { type: "button", class: "primary", onclick: check }, label);
}

function render(page) {
  const parts = [h("h1", {}, page.group), h("p", { "data-status": page.status }, page.text)];
  if (page.channels.length) {
    parts.push(h("ul", { class: "join-channels" }, page.channels.map((channel) =>
      h("li", {}, channel.url
        ? h("a", { href: channel.url, target: "_blank", rel: "noopener" }, channel.title)
        : channel.title))));
  }
  if (page.status === "missing" || page.status === "check_failed") parts.push(retry(page.button));
  show(...parts);
}

if (id) check();
else show(h("p", { class: "error", role: "alert" }, "This address names no join request."));
