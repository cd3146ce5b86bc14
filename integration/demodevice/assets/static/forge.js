// Loaded by the hostile page (evil.js) into the relay frame, to speak in its
// name: the relay's policy must refuse it.
"use strict";
window.__forged = "script";
parent.postMessage({ type: "porthole.ended", reason: "client" }, "*");
