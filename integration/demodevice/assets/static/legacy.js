// Start-up of a legacy EWS page: synchronous XMLHttpRequests, as jQuery's
// async:false makes them. Browsers never hand these to a service worker
// (crbug.com/602051), so they reach the session origin's server. The page
// stays at "Connection failed" unless each one works.
"use strict";
(function () {
  const results = [];
  function sync(method, url, body, binary) {
    const x = new XMLHttpRequest();
    x.open(method, url, false); // synchronous
    // Binary answers, the pre-ArrayBuffer way (responseType is not allowed
    // on synchronous requests of a window).
    if (binary) x.overrideMimeType("text/plain; charset=x-user-defined");
    x.send(body === undefined ? null : body);
    return x;
  }
  function check(name, f) {
    let ok = false, detail = "";
    try {
      [ok, detail] = f();
    } catch (e) {
      detail = String(e);
    }
    results.push({ name, ok, detail });
    return ok;
  }
  function bytes(text) {
    const out = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff;
    return out;
  }
  document.addEventListener("DOMContentLoaded", () => {
    const el = document.getElementById("legacy");
    let info = null;
    const all = [
      check("GET text", () => {
        const x = sync("GET", "/api/legacy/info");
        info = JSON.parse(x.responseText);
        return [x.status === 200 && typeof info.serial === "string", x.status + " " + x.responseText.slice(0, 80)];
      }),
      check("POST text", () => {
        const x = sync("POST", "/api/legacy/echo", "hello, device");
        return [x.status === 200 && x.responseText === "13:HELLO, DEVICE", x.status + " " + x.responseText];
      }),
      check("GET binary", () => {
        const x = sync("GET", "/api/legacy/blob", undefined, true);
        const b = bytes(x.responseText);
        let good = b.length === 256;
        for (let i = 0; good && i < 256; i++) good = b[i] === i;
        return [x.status === 200 && good, x.status + " " + b.length + " bytes"];
      }),
      check("POST binary", () => {
        const body = new Uint8Array(4096);
        for (let i = 0; i < body.length; i++) body[i] = (i * 7) & 0xff;
        const x = sync("POST", "/api/legacy/blob", body);
        return [x.status === 200 && x.responseText.startsWith("4096 "), x.status + " " + x.responseText];
      }),
    ].every(Boolean);
    const table = document.getElementById("legacy-results");
    for (const r of results) {
      const tr = table.insertRow();
      tr.insertCell().textContent = r.name;
      tr.insertCell().textContent = r.ok ? "ok" : "FAILED";
      tr.insertCell().textContent = r.detail;
    }
    window.__legacy = results;
    el.dataset.state = all ? "ok" : "failed";
    el.textContent = all ? "Ready: " + info.model + " " + info.serial : "Connection failed";
  });
})();
