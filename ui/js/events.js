// Live events over Server-Sent Events. The browser's EventSource reconnects by itself and sends
// Last-Event-ID, so the server replays what was missed; a `resync` notice from the server (this
// client fell behind) is followed by exactly that reconnect.

const listeners = new Set();
let source = null;

const KINDS = ["bot_status", "verification", "member_join", "member_leave", "health", "activity", "log", "settings_changed", "audit"];

export function connect() {
  if (source) return;
  source = new EventSource("/api/v1/events/stream");
  for (const kind of KINDS) {
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
}

/// Calls `listener(event)` for every event until the returned function is called.
export function subscribe(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}
