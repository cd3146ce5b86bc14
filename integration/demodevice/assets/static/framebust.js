// Old-style frame busting, as many device pages still do.
"use strict";
(function () {
  const framed = window.top !== window.self;
  const el = document.getElementById("framed");
  if (el) el.textContent = framed ? "yes" : "no";
  document.documentElement.dataset.framed = framed ? "1" : "0";
  if (framed) {
    try { window.top.location = window.self.location.href; } catch (err) { /* sandboxed */ }
  }
})();
