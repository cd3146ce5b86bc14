// The relay frame, on the session's DEVICE origin (https://<id>.D), hidden
// inside the session window (shell origin). It registers the device
// origin's service worker and forwards the worker's requests, with their
// MessagePorts and body streams, to the shell; and the shell's session
// state (expiry, end) to the worker. Nothing else: it holds nothing, and
// the device's page, same-origin with it, can reach it (SECURITY.md).
//
// It lives inside the shell because the shell is same-site with the device
// origin: the frame shares the first-party service worker that the
// device's top-level tabs use, so one relay serves the shell's frame and
// every popped-out tab alike.

import { MSG, shellOriginOf } from './protocol.js';
import { t } from './messages.js';

const WORKER_URL = '/__t/sw.js';
const ENDED_URL = '/__t/ended';
const SHELL = shellOriginOf(location);
const HEARTBEAT = 10_000; // re-announce, for a worker that was stopped and restarted

// The ticket in ?t= is for the server; it must not stay in the URL.
if (location.search) history.replaceState(null, '', location.pathname);

/**
 * The worker has unregistered and sent the device's windows to the end
 * page; the window in the shell's own frame is gone by then (the shell
 * shows its ended view), so the relay itself asks for the end page, whose
 * Clear-Site-Data clears the origin's storage, caches and worker
 * registrations (a fetch from a document of the origin is enough; measured
 * in Chromium 156 with TestSessionEndLeavesNothing).
 */
async function wipeOrigin() {
  try {
    await fetch(ENDED_URL, { cache: 'no-store', credentials: 'same-origin' });
  } catch {
    // signaling is gone; the storage stays until the browser's own cleanup
  }
}

function fromOurWorker(e) {
  const src = e.source;
  return typeof ServiceWorker !== 'undefined' && src instanceof ServiceWorker && new URL(src.scriptURL).pathname === WORKER_URL;
}

/** A step of the relay's setup, for the bench's timeline (as shell.js step). */
function step(name) {
  performance.mark(`porthole.relay.${name}`);
}

function main() {
  step('script');
  // Only inside the session window: anywhere else there is nobody to relay to.
  if (window.parent === window || location.ancestorOrigins?.[0] !== SHELL) {
    document.body.textContent = t('relay.page');
    return;
  }
  if (!('serviceWorker' in navigator)) {
    window.parent.postMessage({ type: MSG.relayReady, error: t('relay.noWorkers') }, SHELL);
    return;
  }
  let announced = false;
  navigator.serviceWorker.addEventListener('message', (e) => {
    if (!fromOurWorker(e)) return;
    const m = e.data;
    if (!m || typeof m !== 'object') return;
    if (m.type === MSG.relayAck && !announced) {
      announced = true;
      step('acked');
      window.parent.postMessage({ type: MSG.relayReady }, SHELL);
    } else if (m.type === MSG.fetch && e.ports.length === 1) {
      m.relayed = performance.timeOrigin + performance.now(); // sw.js hopTiming
      window.parent.postMessage(m, SHELL, m.body ? [e.ports[0], m.body] : [e.ports[0]]);
    } else if (m.type === MSG.ws && e.ports.length === 1) {
      window.parent.postMessage(m, SHELL, [e.ports[0]]);
    } else if (m.type === MSG.wiped) {
      wipeOrigin().then(() => window.parent.postMessage({ type: MSG.wiped }, SHELL));
    }
  });
  navigator.serviceWorker.startMessages();

  // The worker registers at once, while the shell is still joining the
  // session (it loads this frame first thing); the relay announces itself
  // to the worker only with the shell's port, which the shell sends once it
  // holds the session (shell.js joinRelay). A window that is refused never
  // sends it, so its relay never speaks for the session.
  step('register');
  const active = navigator.serviceWorker.register(WORKER_URL, { scope: '/', type: 'module', updateViaCache: 'none' })
    .then(() => {
      step('registered');
      return navigator.serviceWorker.ready;
    })
    .then((reg) => {
      step('active');
      return reg;
    });
  active.catch((err) => window.parent.postMessage({ type: MSG.relayReady, error: t('relay.workerFailed', { error: err.message }) }, SHELL));
  const toWorker = (m, transfer = []) => active.then((reg) => (reg.active || navigator.serviceWorker.controller)?.postMessage(m, transfer), () => {});

  // Installed before this module finishes evaluating, so a message the
  // shell posts once the frame has loaded is never lost.
  let portGiven = false;
  window.addEventListener('message', (e) => {
    if (e.source !== window.parent || e.origin !== SHELL) return;
    const m = e.data;
    if (!m || typeof m !== 'object') return;
    if (m.type === MSG.port && e.ports.length === 1) {
      // The shell's port for the worker, taken only while this relay is
      // the session window's only frame: no device page exists yet that
      // could script this realm and take it (protocol.js), and none will
      // until the shell has this relay's ready, which comes after the port
      // is handed on. The relay keeps it only until the worker is active.
      const port = e.ports[0];
      if (portGiven || window.parent.length !== 1) {
        port.close();
        portGiven = true;
        return;
      }
      portGiven = true;
      toWorker({ type: MSG.port }, [port]);
      const hello = () => toWorker({ type: MSG.relayHello });
      hello();
      setInterval(hello, HEARTBEAT);
    } else if (m.type === MSG.relayUp) window.parent.postMessage({ type: MSG.relayUp }, SHELL);
    else if (m.type === MSG.session && typeof m.expires === 'number') toWorker({ type: MSG.session, expires: m.expires });
    else if (m.type === MSG.ended) toWorker({ type: MSG.ended, reason: typeof m.reason === 'string' ? m.reason : '' });
  });
  // The shell may be listening already, or not yet (this frame is in its
  // HTML and can start first): it asks, and is answered, if it was not.
  window.parent.postMessage({ type: MSG.relayUp }, SHELL);
}

main();
