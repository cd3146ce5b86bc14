// The service worker, on the session's DEVICE origin (https://<id>.D): it
// holds nothing secret. It intercepts every request of the device's
// windows — the shell's device frame, the tabs popped out of it, the
// windows the device's page opens — and hands it, through the relay frame
// (relay.js, device origin, hidden inside the shell), to the session window
// on the shell origin, which carries it over the session's one WebRTC peer
// connection to the agent (tunnel.js); the answer comes back on a
// MessagePort as a streamed Response. HTML documents get the page shim
// (inject.js). Porthole's own paths (/__t/, /favicon.ico) go to the server.
//
// When the session ends it sends every device window to /__t/ended (which
// wipes the origin), deletes the origin's cookies and unregisters itself.
//
// Registered by the relay as a module worker with scope "/" (the server
// sends Service-Worker-Allowed: /).

import { targetOf, cookieHeader, parseCookiePair, responseHeaders, redirectTarget, statusForCode, requestOrigin, NULL_BODY_STATUS } from './headers.js';
import { endedPage, errorPage, offsitePage, offsiteLinkPage } from './pages.js';
import { injectShim, isHTML } from './inject.js';
import { MSG, shellOriginOf } from './protocol.js';
import { t } from './messages.js';
// The modules the imports above import in turn, named here too so the
// browser fetches the whole graph in one round: a worker's imports cannot
// be preloaded, and each level costs a round trip to the server on every
// registration, which is on the session's setup path (each session has an
// origin, so a worker, of its own). web TestWorkerImportsItsGraphDirectly
// keeps it flat.
import './frames.js';
import './strictjson.js';
import './catalog.js';

// The worker's own global scope, typed as what it is: make lint checks
// this file with TypeScript's webworker lib (jsconfig.worker.json), whose
// `self` is any worker's.
const sw = /** @type {ServiceWorkerGlobalScope} */ (/** @type {unknown} */ (self));

const PREFIX = '/__t/';
const RELAY_PATH = '/__t/relay.html';
const SHIM_PATH = '/__t/page.js';
const ENDED_PATH = '/__t/ended';
const OFFSITE_PATH = '/__t/offsite';
const UNSTORED_PATH = '/__t/unstored';
const SHIM_CACHE = 'porthole-shim';
// How long a request may wait for the shell to answer with a head. The
// agent has its own device timeouts; this catches a shell that went away.
const HEAD_TIMEOUT = 120_000;
// How long a request waits for a relay when there is none: the session
// window reloading takes about a second; a closed one never comes back.
const RELAY_WAIT = 5_000;

const SHELL_ORIGIN = shellOriginOf(sw.location);

// What the relay told us. The worker may be stopped and restarted at any
// time and lose this; the shell is the authority and refuses requests once
// the session is over, so forgetting it here fails closed anyway.
let ended = null; // reason, once the session is over
let expires = 0; // ms since epoch, 0 if unknown
let relayId = ''; // the client id of the relay that announced itself last
const relayWaiters = new Set();
// The shell's own port (protocol.js MSG.port), and the client id of the
// relay that handed it over: requests go straight to the shell on it. A
// worker that was stopped and restarted has none and goes through the relay
// until the session window is reopened. A port is taken only while there is
// none that is alive, so a relay the device's page forged cannot replace it.
let shellPort = null;
let portRelayId = '';
// Requests on the shell's port share it, told apart by an id (MSG.fetch's
// id, echoed in the reply; {type: 'abort', id} cancels): a MessageChannel
// each, transferred to the session window's process and answered on,
// cost every request a pipe of its own between the two processes.
let muxSeq = 0;
const muxReplies = new Map(); // id → the request's reply handler

/** A reply on the shell's port goes to the request of its id. */
function onShellReply(e) {
  const id = e.data?.id;
  const reply = muxReplies.get(id);
  if (!reply) return;
  muxReplies.delete(id);
  reply(e.data);
}

// How long a request on the shell's port waits before the worker checks
// that the session window that gave the port still exists.
const PORT_CHECK = 1_000;

// Installed at once: the relay waits for an active worker
// (navigator.serviceWorker.ready, which an activating one satisfies), so
// the shim's download is done while activating, alongside the claim, not
// before it (fetch events wait for both).
sw.addEventListener('install', (e) => e.waitUntil(sw.skipWaiting()));
sw.addEventListener('activate', (e) => {
  // The shim is served from here, so a navigation costs no round trip to
  // the server for it. A failure only means it comes from the network.
  e.waitUntil(Promise.all([sw.clients.claim(), caches.open(SHIM_CACHE).then((c) => c.add(SHIM_PATH)).catch(() => {})]));
});

/**
 * A relay client: the relay page in a nested frame.
 * @param {any} src a message's source or a client
 * @returns {boolean}
 */
function isRelay(src) {
  return src && src.type === 'window' && src.frameType === 'nested' && new URL(src.url).pathname === RELAY_PATH;
}

sw.addEventListener('message', (e) => {
  // Only the relay speaks for the session window. (The device's page can
  // load a relay page of its own; what it then gets is its own requests.)
  // Typed as the window client it must be: a worker or a port as source
  // has none of a client's fields, so the checks below refuse it.
  const src = /** @type {WindowClient | null} */ (e.source);
  if (!isRelay(src)) {
    // A device page's WebSocket (page/websocket.js): handed on to the
    // shell like a request, with the page's cookies; the shell checks it.
    if (src && src.type === 'window' && e.data?.type === MSG.ws && e.ports.length === 1) e.waitUntil(carryWebSocket(e.data, e.ports[0]));
    return;
  }
  const m = e.data;
  if (!m || typeof m !== 'object') return;
  switch (m.type) {
    case MSG.port:
      if (!shellPort && e.ports.length === 1) {
        shellPort = e.ports[0];
        shellPort.onmessage = onShellReply;
        portRelayId = src.id;
        shellPort.postMessage({ type: MSG.portAck });
      }
      return;
    case MSG.relayHello:
      // Another relay: the session window was reloaded, and the port of
      // the one before is dead if its relay is gone.
      if (shellPort && src.id !== portRelayId) e.waitUntil(portAlive(shellPort));
      relayId = src.id;
      for (const w of relayWaiters) w();
      relayWaiters.clear();
      src.postMessage({ type: MSG.relayAck });
      return;
    case MSG.session:
      if (typeof m.expires === 'number') expires = m.expires;
      return;
    case MSG.ended:
      ended = typeof m.reason === 'string' ? m.reason.slice(0, 64) : 'session_ended';
      dropPort();
      e.waitUntil(wipe().then(() => src.postMessage({ type: MSG.wiped }), () => src.postMessage({ type: MSG.wiped })));
      return;
    default:
  }
});

function dropPort() {
  shellPort?.close();
  shellPort = null;
  portRelayId = '';
}

/**
 * Whether port is still the shell's live port: the relay that handed it
 * over still exists (Chromium 156 has no MessagePort close event). A dead
 * one is dropped, so requests go through the relay again until a new
 * session window hands over its own.
 */
async function portAlive(port) {
  if (port !== shellPort) return false;
  const c = await sw.clients.get(portRelayId);
  if (c || port !== shellPort) return port === shellPort;
  dropPort();
  return false;
}

/**
 * The end of the session: every device window goes to the end page (the
 * server wipes the origin's storage and cache with it), the cookies the
 * device set here are deleted, and the worker unregisters itself.
 */
async function wipe() {
  const windows = await sw.clients.matchAll({ type: 'window', includeUncontrolled: true });
  await Promise.all(windows.map(async (c) => {
    if (isRelay(c) || new URL(c.url).pathname === ENDED_PATH) return;
    try {
      await c.navigate(ENDED_PATH);
    } catch {
      // not controlled by us: it asks the server next time, which answers
      // "no such session"
    }
  }));
  if (sw.cookieStore) {
    try {
      // Chromium's items still carry the path the cookie store's spec dropped.
      const items = /** @type {Array<CookieListItem & {path?: string}>} */ (await sw.cookieStore.getAll());
      for (const c of items) await sw.cookieStore.delete({ name: c.name, path: c.path || '/' });
    } catch {
      // a cookie the store cannot delete is one it could not have set
    }
  }
  await caches.delete(SHIM_CACHE).catch(() => {});
  await sw.registration.unregister();
}

sw.addEventListener('fetch', (e) => {
  const req = e.request;
  const url = new URL(req.url);
  // Other origins are not ours to carry; the device page's CSP refuses them.
  if (url.origin !== sw.location.origin) return;
  if (url.pathname === SHIM_PATH) {
    e.respondWith(caches.match(SHIM_PATH).then((r) => r || fetch(req)));
    return;
  }
  if (url.pathname === OFFSITE_PATH) {
    // The page shim's interstitial for a link, form or window.open that
    // leaves the device (page/offsite.js): built here, nothing fetched.
    e.respondWith(html(200, offsiteLinkPage(url.searchParams.get('u') || '')));
    return;
  }
  if (url.pathname === UNSTORED_PATH) {
    // The page shim's request that keeps a top-level device page out of
    // the back-forward cache (page/unstored.js): built here, nothing fetched.
    e.respondWith(new Response(null, { status: 204, headers: { 'Cache-Control': 'no-store' } }));
    return;
  }
  if (url.pathname.startsWith(PREFIX) || url.pathname === '/favicon.ico') return;
  e.respondWith(carry(e, req, url));
});

function html(status, body) {
  return new Response(body, {
    status,
    headers: {
      'Content-Type': 'text/html; charset=utf-8',
      'Content-Security-Policy': `default-src 'none'; style-src 'self'; frame-ancestors 'self' ${SHELL_ORIGIN}`,
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      'Origin-Agent-Cluster': '?1',
    },
  });
}

function isOver() {
  if (ended) return ended;
  if (expires && Date.now() >= expires) return 'expired';
  return '';
}

/**
 * The relay: the one that announced itself, else any relay window (after
 * a restart of this worker), else the next to announce itself within
 * RELAY_WAIT (the session window reloading). Null when there is none.
 */
async function findRelay() {
  if (relayId) {
    const c = await sw.clients.get(relayId);
    if (c) return c;
  }
  const all = await sw.clients.matchAll({ includeUncontrolled: true, type: 'window' });
  const r = all.find(isRelay);
  if (r) return r;
  await new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      relayWaiters.delete(done);
      resolve();
    };
    const timer = setTimeout(done, RELAY_WAIT);
    relayWaiters.add(done);
  });
  return relayId ? (await sw.clients.get(relayId)) || null : null;
}

async function pageCookies() {
  // Cookies the page set through document.cookie or that we mirrored; the
  // agent merges them with its jar, which also holds the HttpOnly ones.
  if (!sw.cookieStore) return '';
  try {
    return cookieHeader(await sw.cookieStore.getAll());
  } catch {
    return '';
  }
}

async function mirrorCookies(pairs) {
  if (!sw.cookieStore) return;
  for (const pair of pairs || []) {
    const c = parseCookiePair(pair);
    if (!c) continue;
    try {
      await sw.cookieStore.set({ name: c.name, value: c.value, path: '/' });
    } catch {
      // a cookie the store refuses is one the page cannot read either
    }
  }
}

async function deleteCookies(names) {
  // The device deleted these (agent/deviceproxy reports them): so must the
  // session origin's store, or the page's scripts would still see them.
  if (!sw.cookieStore || !Array.isArray(names)) return;
  for (const name of names) {
    if (typeof name !== 'string') continue;
    try {
      await sw.cookieStore.delete({ name, path: '/' });
    } catch {
      // nothing to delete
    }
  }
}

async function carryWebSocket(m, port) {
  const refuse = () => {
    port.postMessage({ type: 'close', code: 1006, reason: '', wasClean: false });
    port.close();
  };
  if (isOver()) return refuse();
  const relay = shellPort || (await findRelay());
  if (!relay) return refuse();
  const protocols = Array.isArray(m.protocols) ? m.protocols : [];
  relay.postMessage({ type: MSG.ws, target: m.target, protocols, cookie: await pageCookies() }, [port]);
}

async function requestBody(req) {
  if (req.method === 'GET' || req.method === 'HEAD') return null;
  // Streaming when the browser exposes the body as a stream, else the bytes.
  if (req.body) return req.body;
  const buf = await req.arrayBuffer();
  if (!buf.byteLength) return null;
  return new ReadableStream({
    start(c) {
      c.enqueue(new Uint8Array(buf));
      c.close();
    },
  });
}

/** Milliseconds on the clock every context of the browser shares. */
const clock = () => performance.timeOrigin + performance.now();

/**
 * Where a request's time went before its response head, as Server-Timing
 * metrics (the page's Resource Timing shows them; make bench reads them):
 * pre: the worker, before it posts the request (finding the shell, the
 * cookies, the body); relay: worker to relay frame; shell: on to the
 * shell; tunnel: the shell's round trip
 * over the data channel to the device's head; body: the shell waiting for
 * a small body's end (smallbody.js); back: the head from the shell to the
 * worker. Durations only; they tell the page nothing it could
 * not time itself.
 */
function hopTiming(t) {
  const d = (a, b) => (typeof a === 'number' && typeof b === 'number' && b >= a ? (b - a).toFixed(1) : null);
  const parts = [['ph-pre', d(t.start, t.posted)], ['ph-relay', d(t.posted, t.relayed)], ['ph-shell', d(t.relayed ?? t.posted, t.recv)], ['ph-tunnel', d(t.recv, t.head)],
    ['ph-body', d(t.head, t.body)], ['ph-back', d(t.body ?? t.head, t.reply)]];
  return parts.filter(([, v]) => v !== null).map(([k, v]) => `${k};dur=${v}`).join(', ');
}

async function carry(event, req, url) {
  const timing = { start: clock() };
  const over = isOver();
  if (over) return html(410, endedPage(over));
  // Straight to the shell on its port, else through the relay frame.
  const via = shellPort;
  const relay = via || (await findRelay());
  if (!relay) return html(503, errorPage('unavailable', t('page.windowClosed')));

  const [body, cookie] = await Promise.all([requestBody(req), pageCookies()]);
  // On the shell's port, by id; through the relay, on a channel of its own.
  const id = via ? ++muxSeq : 0;
  const { port1, port2 } = via ? { port1: null, port2: null } : new MessageChannel();
  const navigate = req.mode === 'navigate';
  const msg = {
    type: MSG.fetch,
    method: req.method,
    target: targetOf(url),
    headers: [...req.headers],
    cookie,
    body,
    origin: requestOrigin(req, sw.location.origin),
    referrer: req.referrer && req.referrer !== 'about:client' ? req.referrer : '',
    dest: req.destination,
    navigate,
  };
  if (via) msg.id = id;
  const send = () => relay.postMessage(msg, [...(port2 ? [port2] : []), ...(msg.body ? [msg.body] : [])]);
  timing.posted = clock();
  try {
    send();
  } catch {
    // A stream this browser cannot transfer: send the bytes instead.
    const bytes = body ? new Uint8Array(await new Response(body).arrayBuffer()) : null;
    msg.body = bytes ? new ReadableStream({ start: (c) => { c.enqueue(bytes); c.close(); } }) : null;
    send();
  }
  // The page gave up (aborted fetch, navigated away) before the head came.
  const onAbort = () => (via ? via.postMessage({ type: 'abort', id }) : port1.postMessage({ type: 'abort' }));
  req.signal?.addEventListener('abort', onAbort, { once: true });

  const reply = await new Promise((resolve) => {
    let settled = false;
    const settle = (v) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(check);
      resolve(v);
    };
    const timer = setTimeout(() => settle({ type: 'error', code: 'device_timeout', message: t('page.noAnswer') }), HEAD_TIMEOUT);
    // A port whose session window is gone never answers: ask again
    // through the relay (a request without a body), or fail at once.
    const check = via ? setTimeout(() => portAlive(via).then((alive) => alive || settle({ type: 'retry' })), PORT_CHECK) : 0;
    const onReply = (data) => {
      timing.reply = clock();
      settle(data);
    };
    if (via) muxReplies.set(id, onReply);
    else port1.onmessage = (e) => onReply(e.data);
  });
  muxReplies.delete(id);
  if (reply?.type === 'retry') {
    port1?.close();
    if (!body) return carry(event, req, url);
    return html(503, errorPage('unavailable', t('page.windowClosedSending')));
  }
  if (!reply || reply.type !== 'response') {
    const code = typeof reply?.code === 'string' ? reply.code : 'internal';
    if (code === 'session_ended') return html(410, endedPage(reply.message || code));
    return html(statusForCode(code), errorPage(code, typeof reply?.message === 'string' ? reply.message : ''));
  }

  await mirrorCookies(reply.cookies);
  await deleteCookies(reply.deletedCookies);
  const status = reply.status;
  const doc = navigate && (req.destination === 'document' || req.destination === 'iframe' || req.destination === 'frame');
  const headers = new Headers();
  for (const [k, v] of responseHeaders(reply.header, { shellOrigin: SHELL_ORIGIN, document: doc, topLevel: req.destination === 'document' })) {
    try {
      headers.append(k, v);
    } catch {
      // a value the Headers class refuses is dropped, not fatal
    }
  }
  if (reply.timing && typeof reply.timing === 'object') {
    timing.relayed = reply.timing.relayed;
    timing.recv = reply.timing.recv;
    timing.head = reply.timing.head;
    timing.body = reply.timing.body;
  }
  headers.append('Server-Timing', hopTiming(timing));
  const location = headers.get('Location');
  if (location !== null) {
    const r = redirectTarget(location, sw.location.origin, req.url);
    if (r.offsite) {
      reply.body?.cancel().catch(() => {});
      return html(502, offsitePage(r.offsite));
    }
    headers.set('Location', r.location);
  }
  // Response accepts 200-599 only; 1xx and exotic codes become an error.
  if (status < 200 || status > 599) {
    reply.body?.cancel().catch(() => {});
    return html(502, errorPage('device_failed', t('page.deviceStatus', { status })));
  }
  // A small body came whole with the head (smallbody.js), else a stream.
  const bytes = reply.bytes instanceof ArrayBuffer ? reply.bytes : null;
  if ((!reply.body && !bytes) || NULL_BODY_STATUS.has(status) || req.method === 'HEAD') {
    reply.body?.cancel().catch(() => {});
    return new Response(null, { status, headers });
  }
  if (bytes && !doc) return new Response(bytes, { status, headers });
  let out = reply.body || new Response(bytes).body;
  if (doc && isHTML(headers.get('Content-Type'))) {
    headers.delete('Content-Length');
    out = injectShim(out, headers.get('Porthole-Device-Origins'));
  }
  // Keep the worker alive until the body has been handed over completely;
  // the piping also carries cancellation back to the shell.
  const { readable, writable } = new TransformStream();
  event.waitUntil(out.pipeTo(writable).catch(() => {}));
  return new Response(readable, { status, headers });
}
