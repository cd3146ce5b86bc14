// The session origin's service worker. It intercepts every request the
// device's page makes and hands it to the shell window, which carries it over
// a WebRTC data channel to the agent (tunnel.js); the answer comes back as a
// streamed Response. Top-level navigations go to the network, where the
// server answers with the shell, and the shell's own files (/__t/,
// /favicon.ico) are never sent to the device.
//
// Registered as a module worker with scope "/" (the server sends
// Service-Worker-Allowed: /).

import { targetOf, cookieHeader, parseCookiePair, responseHeaders, redirectTarget, statusForCode, NULL_BODY_STATUS } from './headers.js';
import { endedPage, errorPage, offsitePage } from './pages.js';

const SHELL_PREFIX = '/__t/';
// How long a request may wait for the shell to answer with a head. The
// agent has its own device timeouts; this catches a shell that went away.
const HEAD_TIMEOUT = 120_000;

// What the shell told us. The worker may be stopped and restarted at any
// time and lose this; the shell is the authority and refuses requests once
// the session is over, so forgetting it here fails closed anyway.
let ended = null; // reason, once the session is over
let expires = 0; // ms since epoch, 0 if unknown
let shellId = ''; // the client id of the shell that announced itself last

self.addEventListener('install', (e) => e.waitUntil(self.skipWaiting()));
self.addEventListener('activate', (e) => e.waitUntil(self.clients.claim()));

self.addEventListener('message', (e) => {
  // Only top-level windows of this origin are shells; the device's page runs
  // in a nested frame and cannot speak for the session.
  const src = e.source;
  if (!src || src.type !== 'window' || src.frameType !== 'top-level') return;
  const m = e.data;
  if (!m || typeof m !== 'object') return;
  if (m.type === 'porthole.shell') {
    shellId = src.id;
    if (typeof m.expires === 'number') expires = m.expires;
    ended = null;
  } else if (m.type === 'porthole.ended') {
    ended = typeof m.reason === 'string' ? m.reason.slice(0, 64) : 'session_ended';
  }
});

self.addEventListener('fetch', (e) => {
  const req = e.request;
  const url = new URL(req.url);
  // Other origins are not ours to carry; the device page's CSP refuses them.
  if (url.origin !== self.location.origin) return;
  if (url.pathname.startsWith(SHELL_PREFIX) || url.pathname === '/favicon.ico') return;
  // A top-level navigation loads the shell from the server, which then shows
  // this path in its frame. Frames (destination iframe/frame) are device pages.
  if (req.mode === 'navigate' && req.destination === 'document') return;
  e.respondWith(carry(e, req, url));
});

function html(status, body) {
  return new Response(body, {
    status,
    headers: {
      'Content-Type': 'text/html; charset=utf-8',
      'Content-Security-Policy': "default-src 'none'; style-src 'self'; frame-ancestors 'self'",
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
    },
  });
}

function isOver() {
  if (ended) return ended;
  if (expires && Date.now() >= expires) return 'expired';
  return '';
}

/** The shell window: the one that announced itself, else any top-level window. */
async function findShell() {
  const all = await self.clients.matchAll({ includeUncontrolled: true, type: 'window' });
  const tops = all.filter((c) => c.frameType === 'top-level');
  return tops.find((c) => c.id === shellId) || tops[0] || null;
}

async function pageCookies() {
  // Cookies the page set through document.cookie or that we mirrored; the
  // agent merges them with its jar, which also holds the HttpOnly ones.
  if (!self.cookieStore) return '';
  try {
    return cookieHeader(await self.cookieStore.getAll());
  } catch {
    return '';
  }
}

async function mirrorCookies(pairs) {
  if (!self.cookieStore) return;
  for (const pair of pairs || []) {
    const c = parseCookiePair(pair);
    if (!c) continue;
    try {
      await self.cookieStore.set({ name: c.name, value: c.value, path: '/' });
    } catch {
      // a cookie the store refuses is one the page cannot read either
    }
  }
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

async function carry(event, req, url) {
  const over = isOver();
  if (over) return html(410, endedPage(over));
  const shell = await findShell();
  if (!shell) return html(503, errorPage('unavailable', 'The Porthole session window is closed. Reopen the session to reach the device.'));

  const [body, cookie] = await Promise.all([requestBody(req), pageCookies()]);
  const { port1, port2 } = new MessageChannel();
  const msg = {
    type: 'porthole.fetch',
    method: req.method,
    target: targetOf(url),
    headers: [...req.headers],
    cookie,
    body,
  };
  try {
    shell.postMessage(msg, body ? [port2, body] : [port2]);
  } catch {
    // A stream this browser cannot transfer: send the bytes instead.
    const bytes = body ? new Uint8Array(await new Response(body).arrayBuffer()) : null;
    msg.body = bytes ? new ReadableStream({ start: (c) => { c.enqueue(bytes); c.close(); } }) : null;
    shell.postMessage(msg, msg.body ? [port2, msg.body] : [port2]);
  }
  // The page gave up (aborted fetch, navigated away) before the head came.
  const onAbort = () => port1.postMessage({ type: 'abort' });
  req.signal?.addEventListener('abort', onAbort, { once: true });

  const reply = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ type: 'error', code: 'device_timeout', message: 'No answer from the session window.' }), HEAD_TIMEOUT);
    port1.onmessage = (e) => {
      clearTimeout(timer);
      resolve(e.data);
    };
  });
  if (!reply || reply.type !== 'response') {
    const code = typeof reply?.code === 'string' ? reply.code : 'internal';
    if (code === 'session_ended') return html(410, endedPage(reply.message || code));
    return html(statusForCode(code), errorPage(code, typeof reply?.message === 'string' ? reply.message : ''));
  }

  await mirrorCookies(reply.cookies);
  let status = reply.status;
  const headers = new Headers();
  for (const [k, v] of responseHeaders(reply.header)) {
    try {
      headers.append(k, v);
    } catch {
      // a value the Headers class refuses is dropped, not fatal
    }
  }
  const location = headers.get('Location');
  if (location !== null) {
    const r = redirectTarget(location, self.location.origin, req.url);
    if (r.offsite) {
      reply.body?.cancel().catch(() => {});
      return html(502, offsitePage(r.offsite));
    }
    headers.set('Location', r.location);
  }
  // Response accepts 200-599 only; 1xx and exotic codes become an error.
  if (status < 200 || status > 599) {
    reply.body?.cancel().catch(() => {});
    return html(502, errorPage('device_failed', `The device answered with status ${status}.`));
  }
  if (!reply.body || NULL_BODY_STATUS.has(status)) {
    reply.body?.cancel().catch(() => {});
    return new Response(null, { status, headers });
  }
  // Keep the worker alive until the body has been handed over completely;
  // the piping also carries cancellation back to the shell.
  const { readable, writable } = new TransformStream();
  event.waitUntil(reply.body.pipeTo(writable).catch(() => {}));
  return new Response(readable, { status, headers });
}
