// Live events over Server-Sent Events. The browser's EventSource reconnects by itself and sends
// Last-Event-ID, so the server replays what was missed; a `resync` notice from the server (this
// client fell behind) is followed by exactly that reconnect.

import { words } from "./vocabulary.js";

const listeners = new Set();
let source = null;

/// Shows whether live updates flow (the header's indicator; tests read `data-stream` too).
function showState(state) {
  document.documentElement.dataset.stream = state;
  const indicator = document.getElementById("live");
  if (!indicator) return;
  indicator.hidden = state === "closed";
  indicator.textContent = state === "open" ? "● Live" : "○ Reconnecting…";
  indicator.title = state === "open" ? "Live updates are on" : "Live updates paused; reconnecting";
}

/// Opens the stream; `after` (an event id) replays what happened since, so nothing published
/// between loading a page's data and the stream opening is missed.
export function connect(after) {
  if (source) return;
  source = new EventSource(`/api/v1/events/stream${after ? `?last_event_id=${after}` : ""}`);
  showState("connecting");
  source.addEventListener("open", () => showState("open"));
  source.addEventListener("error", () => showState(source?.readyState === EventSource.CLOSED ? "closed" : "connecting"));
  // Events arrive named by kind, and only named listeners hear them: one per kind the server has.
  for (const kind of words().event_kinds) {
    source.addEventListener(kind, (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch { return; }
      for (const listener of listeners) listener(event);
    });
  }
}

export function disconnect() {
  source?.close();
  source = null;
  showState("closed");
}

/// Calls `listener(event)` for every event until the returned function is called.
export function subscribe(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

// A page kept in the back-forward cache would keep its stream open, and browsers allow only six
// connections per server over HTTP/1.1: a few visits later no page could load. Close it on the
// way out; reopen it if the browser brings the page back.
let wanted = false;
window.addEventListener("pagehide", () => {
  wanted = source !== null;
  disconnect();
});
window.addEventListener("pageshow", (event) => {
  if (event.persisted && wanted) connect();
});

/// Calls `refresh()` after events `wanted(event)` accepts, once per burst (`delay` ms after the
/// first), its failures ignored (the next event tries again). Returns the page's cleanup. The one
/// way every page refreshes on events.
export function refreshOn(wanted, refresh, delay = 300) {
  let pending = null;
  const unsubscribe = subscribe((event) => {
    if (!wanted(event)) return;
    pending ??= setTimeout(() => { pending = null; Promise.resolve(refresh()).catch(() => {}); }, delay);
  });
  return () => { unsubscribe(); clearTimeout(pending); };
}
