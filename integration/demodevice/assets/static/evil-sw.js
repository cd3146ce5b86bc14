// The hostile page's own service worker (evil.js): it would answer every
// request of the origin itself. The session origin must never register it.
"use strict";
self.addEventListener("fetch", (e) => e.respondWith(new Response("owned by the device's worker")));
