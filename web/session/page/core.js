// The page shim's core (web/session/page/, bundled as /__t/page.js by
// web.go in the order of its pageParts). The service worker puts the shim
// into every HTML document it carries, as the first script, so it runs in
// the device page's own realm before the page's scripts. It is a
// compatibility aid, NOT a security boundary: everything it does, the
// device's page could do itself, and the page can undo any of it.
//
// Each feature is one file that calls feature(name, fn); start.js runs
// them in order with the shim object below. A feature must not throw into
// the page: a failing one is skipped.

const features = [];

/** Registers a feature of the shim; fn(shim) runs once per document. */
function feature(name, fn) {
  features.push({ name, fn });
}

const shim = {
  // The session window's origin (https://shell-<id>.D) for this device
  // origin (https://<id>.D).
  shellOrigin: location.protocol + '//shell-' + location.host,
  // A top-level window: a popped-out tab, or a window the page opened.
  topLevel: window.top === window,
  // The document the session window's device frame shows (not a frame of
  // the device's own inside it).
  inShellFrame: false,
  /**
   * Tells the session window something about this page (protocol.js
   * pageHint): display only, and only from the frame it shows.
   */
  hint(kind, data) {
    if (!shim.inShellFrame) return;
    try {
      window.parent.postMessage(Object.assign({ type: 'porthole.hint', kind }, data || {}), shim.shellOrigin);
    } catch (err) {
      // the session window is gone
    }
  },
};
try {
  const ancestors = location.ancestorOrigins;
  shim.inShellFrame = window.parent !== window && window.parent === window.top &&
    !!ancestors && ancestors.length === 1 && ancestors[0] === shim.shellOrigin;
} catch (err) {
  shim.inShellFrame = false;
}
