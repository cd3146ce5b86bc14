// The messages between the browser parts of a session (SECURITY.md,
// "Origins"). Served on both origins; pure, so node --test checks it.
//
//   service worker (device origin)
//     → relay frame (device origin, hidden inside the shell)
//     → shell (shell origin): one `fetch` per request the worker carries,
//       with a MessagePort on which the shell answers the worker directly,
//       and the request body as a transferred ReadableStream.
//   page shim → worker → relay → shell: `ws`, a WebSocket the device's
//     page opens on its own origin, with the MessagePort the page and the
//     shell then speak over (page/wsclass.js, wsport.js).
//   shell → relay → worker: `session` (the expiry) and `ended`; and once,
//     while the session window holds no device frame yet, `port`: a
//     MessagePort of the shell's that the relay hands on to the worker at
//     once. From then on the worker posts `fetch` and `ws` on that port,
//     straight to the shell (one cross-process hop less per request, and
//     nothing of them passes the relay, which the device's page can
//     script). The relay passes it on only while it is the session
//     window's only frame, so no device page exists yet that could take it.
//   page shim (device origin, in the shell's device frame) → shell: `hint`
//     (the frame's location, a frame-busting page, a WebSocket): untrusted,
//     turned into toolbar text and nothing else.
//
// The device's page is same-origin with the relay and can make it say
// anything (parent.frames[i] reaches it). So the shell takes from the relay
// only tunnel requests of this session, which the page could make anyway,
// and the `ready` that lets it show the device frame. Nothing it accepts
// ends the session, changes the toolbar, reads credentials or touches the
// peer connection.

export const MSG = Object.freeze({
  relayHello: 'porthole.relay', // relay → worker: this window is the relay
  relayAck: 'porthole.relay.ack', // worker → relay
  relayReady: 'porthole.relay.ready', // relay → shell: the worker is active and knows the relay
  relayUp: 'porthole.relay.up', // relay ⇄ shell: the relay listens (sent when it starts, and in answer to the shell's)
  fetch: 'porthole.fetch', // worker → relay → shell: a request to carry
  ws: 'porthole.ws', // page shim → worker → relay → shell: a WebSocket to carry (its MessagePort)
  session: 'porthole.session', // shell → relay → worker: {expires}
  ended: 'porthole.ended', // shell → relay → worker: {reason}
  wiped: 'porthole.wiped', // worker → relay → shell: device windows sent to the end page, worker unregistered
  hint: 'porthole.hint', // page shim → shell
  port: 'porthole.port', // shell → relay → worker, once: the worker's own MessagePort to the shell
  portAck: 'porthole.port.ack', // worker → shell, on that port
});

export const HINTS = new Set(['location', 'framebust', 'websocket']);

const MAX_TARGET = 8192; // proto.MaxTarget
const MAX_HEADERS = 128; // proto.MaxHeaders
const MAX_FIELD = 16 << 10;
const MAX_URL = 4096;
const tokenRe = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const originRe = /^https?:\/\/[a-z0-9.\-:[\]]{1,261}$/;

/** True for a serialized origin ("https://host[:port]") as proto.ValidOrigin. */
export function validOrigin(s) {
  return typeof s === 'string' && originRe.test(s);
}

/** True for an absolute http(s) URL of sane length (a Referer). */
export function validReferrer(s) {
  if (typeof s !== 'string' || s.length > MAX_URL) return false;
  try {
    const u = new URL(s);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}

const isStream = (b) => b !== null && typeof b === 'object' && typeof b.getReader === 'function';

/**
 * Checks a `fetch` message from the relay (with its ports) and returns the
 * request it describes, or null for anything else. Only the fields of a
 * tunnel request survive.
 */
export function tunnelRequest(m, ports) {
  if (!m || typeof m !== 'object' || m.type !== MSG.fetch) return null;
  if (!ports || ports.length !== 1 || typeof ports[0]?.postMessage !== 'function') return null;
  const { method, target, headers, cookie = '', body = null, origin = '', referrer = '', dest = '', navigate = false } = m;
  if (typeof method !== 'string' || method.length > 32 || !tokenRe.test(method)) return null;
  if (typeof target !== 'string' || target.length > MAX_TARGET || !target.startsWith('/') || target.startsWith('//')) return null;
  if (!Array.isArray(headers) || headers.length > MAX_HEADERS) return null;
  for (const h of headers) {
    if (!Array.isArray(h) || h.length !== 2 || typeof h[0] !== 'string' || typeof h[1] !== 'string' || h[0].length + h[1].length > MAX_FIELD) return null;
  }
  if (typeof cookie !== 'string' || cookie.length > MAX_FIELD) return null;
  if (body !== null && !isStream(body)) return null;
  if (origin !== '' && origin !== 'null' && !validOrigin(origin)) return null;
  if (referrer !== '' && !validReferrer(referrer)) return null;
  if (typeof dest !== 'string' || dest.length > 32 || typeof navigate !== 'boolean') return null;
  return { method, target, headers, cookie, body, origin, referrer, dest, navigate, port: ports[0] };
}

/**
 * Checks a `ws` message from the relay (with its port) and returns the
 * WebSocket it asks for, {target, protocols, cookie, port}, or null. The
 * page wrote all of it: a path of the session's device and subprotocol
 * tokens are all that survive.
 */
export function webSocketRequest(m, ports) {
  if (!m || typeof m !== 'object' || m.type !== MSG.ws) return null;
  if (!ports || ports.length !== 1 || typeof ports[0]?.postMessage !== 'function') return null;
  const { target, protocols = [], cookie = '' } = m;
  if (typeof target !== 'string' || target.length > MAX_TARGET || !target.startsWith('/') || target.startsWith('//')) return null;
  if (!Array.isArray(protocols) || protocols.length > 32) return null;
  const seen = new Set();
  for (const p of protocols) {
    if (typeof p !== 'string' || p.length > 256 || !tokenRe.test(p) || seen.has(p)) return null;
    seen.add(p);
  }
  if (typeof cookie !== 'string' || cookie.length > MAX_FIELD) return null;
  return { target, protocols: [...protocols], cookie, port: ports[0] };
}

/**
 * Checks a `hint` message from the page shim; returns {kind, path, reason}
 * or null. All of it is the device page's say-so: display only.
 */
export function pageHint(m) {
  if (!m || typeof m !== 'object' || m.type !== MSG.hint || !HINTS.has(m.kind)) return null;
  const path = typeof m.path === 'string' && m.path.startsWith('/') ? m.path.slice(0, 2048) : '';
  const reason = typeof m.reason === 'string' ? m.reason.slice(0, 64) : '';
  return { kind: m.kind, path, reason };
}

/** The device origin of a session window at loc (https://shell-<id>.D → https://<id>.D). */
export function deviceOriginOf(loc) {
  const host = loc.host.startsWith('shell-') ? loc.host.slice('shell-'.length) : loc.host;
  return `${loc.protocol}//${host}`;
}

/** The shell origin of a device origin location (https://<id>.D → https://shell-<id>.D). */
export function shellOriginOf(loc) {
  return `${loc.protocol}//shell-${loc.host}`;
}
