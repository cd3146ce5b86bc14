// Opens a WebSocket to the device's own origin, as live status pages do.
"use strict";
(function () {
  const el = document.getElementById("ws");
  let ws;
  try {
    ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/status");
  } catch (e) {
    el.textContent = "failed: " + e.message;
    return;
  }
  ws.onopen = () => { el.textContent = "open"; };
  ws.onerror = () => { el.textContent = "error"; };
  ws.onclose = (e) => { el.dataset.closed = String(e.code); if (el.textContent !== "error") el.textContent = "closed " + e.code; };
})();
