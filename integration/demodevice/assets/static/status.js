// Refreshes the live status element from /api/status.
"use strict";
(function () {
  const el = document.getElementById("live-status");
  const updated = document.getElementById("live-updated");
  if (!el) return;
  async function refresh() {
    try {
      const res = await fetch("/api/status", { headers: { Accept: "application/json" } });
      if (!res.ok) throw new Error("HTTP " + res.status);
      const s = await res.json();
      el.textContent = s.status;
      el.dataset.serial = s.serial;
      el.dataset.loaded = "1";
      el.dataset.refreshes = String(Number(el.dataset.refreshes || "0") + 1);
      updated.textContent = "Updated " + new Date(s.time).toLocaleTimeString() +
        " · up " + s.uptimeSeconds + " s · " + s.pageCount.toLocaleString() + " pages";
    } catch (err) {
      el.textContent = "Offline";
      el.dataset.error = String(err);
    }
  }
  refresh();
  setInterval(refresh, 3000);
})();
