// Origin: both origins (the device origin's worker, sw.js; the shell's
// tunnel.js); pure, holds nothing.
//
// Header rules between the device's page and the tunnel, in both directions.
// Pure functions: the worker (sw.js) and the shell (tunnel.js) apply them, and
// node --test checks them. The agent applies its own rules on its side too
// (proto.RequestHead.Validate, its cookie jar); these are the browser's half.

import { canonicalKey, isToken, validFieldValue, MAX_HEAD } from './frames.js';
import { validOrigin, validReferrer } from './protocol.js';

// Hop-by-hop fields (RFC 9110 7.6.1, plus the legacy ones httputil.ReverseProxy
// removes): they describe one connection, and the tunnel is not that
// connection.
export const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization',
  'te', 'trailer', 'transfer-encoding', 'upgrade',
]);

// Request fields the browser side never forwards from the header list.
// Framing comes from the tunnel (Content-Length is carried as
// contentLength), the agent chooses Host, Cookie is rebuilt from the device
// origin's cookie store, and Origin and Referer travel as fields of their
// own (the worker knows them better than the header list shows: see
// requestOrigin), which the agent maps to the device's own only when they
// are this session's device origin.
const REQUEST_DROP = new Set(['host', 'content-length', 'cookie', 'origin', 'referer', 'service-worker', 'service-worker-navigation-preload']);

// Response fields the page never sees: Set-Cookie stays in the agent's jar
// (the head's cookies list carries what may be mirrored), CORS grants and HSTS
// are the device's business not the session origin's, and the frame-blocking
// headers would stop the shell from showing the page at all. Content-Encoding
// is dropped because a worker-built Response is never decoded by the browser:
// the agent decodes bodies, and the header would then be a lie.
// Reporting headers would send reports off the session; Clear-Site-Data would
// wipe the session origin's worker; nosniff and the referrer policy are
// replaced by the session's own. The agent drops the same (agent/deviceproxy,
// response.go); this is the browser's half of that defence in depth.
export const RESPONSE_DROP = new Set([
  'set-cookie', 'set-cookie2', 'strict-transport-security', 'x-frame-options',
  'content-encoding', 'public-key-pins', 'public-key-pins-report-only', 'alt-svc', 'clear-site-data',
  'report-to', 'reporting-endpoints', 'nel', 'x-content-type-options', 'referrer-policy',
  'content-security-policy-report-only', 'origin-agent-cluster',
]);

/**
 * The request header that carries the technician's credentials for a device
 * that asked for Basic or Digest authentication (agent/deviceproxy
 * CredentialsHeader). Only the shell sets it; the page's own are dropped.
 */
export const CREDENTIALS_HEADER = 'X-Porthole-Credentials';

/** Statuses whose Response must have a null body (fetch spec). */
export const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);

/**
 * The policy the agent puts on every proxied response (agent/deviceproxy
 * DeviceCSP, kept identical by a test), in addition to the device's own
 * (browsers enforce each policy, so the device's can only narrow this one).
 * Device pages rely on inline scripts, styles and eval, so those stay allowed;
 * what is refused is any other origin: no remote scripts, no exfiltration by
 * fetch, forms or <base>. The worker replaces it with sessionPolicy.
 */
export const DEVICE_CSP =
  "default-src 'self' 'unsafe-inline' 'unsafe-eval' data: blob:; " +
  "connect-src 'self'; form-action 'self'; base-uri 'self'; frame-ancestors 'self'; " +
  "object-src 'none'";

/**
 * DEVICE_CSP for a response on a session's device origin: it may be framed
 * by the device itself and by its session window (shellOrigin), nothing
 * else; and a top-level document (a popped-out tab) may frame the session
 * window's bar, which holds nothing (page/bar.js).
 */
export function sessionPolicy(shellOrigin, topLevel) {
  let p = DEVICE_CSP.replace("frame-ancestors 'self'", `frame-ancestors 'self' ${shellOrigin}`);
  if (topLevel) p += `; frame-src 'self' data: blob: ${shellOrigin}`;
  return p;
}

/** The Referrer-Policy of device responses: full referrers inside the device origin, none to anyone else. */
export const DEVICE_REFERRER_POLICY = 'same-origin';

/**
 * Builds the proto.RequestHead for a request the page made.
 *   method, target: from the Request (target is pathname + search)
 *   headers: iterable of [name, value] pairs (a Headers object works)
 *   cookie: the Cookie header value built from the device origin's store, or ''
 *   contentLength: -1 unknown, 0 no body, else the exact length
 *   credentials: base64("user:password") from the shell's dialog, or absent
 *   origin: the Origin the browser would send ('' none, 'null', or an origin)
 *   referrer: the request's referrer URL, or ''
 *   clientOrigin: the session's device origin, for proto.RequestHead.ClientOrigin
 */
export function buildRequestHead({ method, target, headers, cookie, contentLength, credentials, origin, referrer, clientOrigin }) {
  if (!isToken(method)) throw new TypeError('invalid method');
  if (typeof target !== 'string' || !target.startsWith('/') || target.startsWith('//')) {
    throw new TypeError('request target must be an absolute path');
  }
  const header = {};
  let n = 0;
  for (const [name, value] of headers || []) {
    const lower = name.toLowerCase();
    if (!isToken(name) || !validFieldValue(value)) continue;
    if (HOP_BY_HOP.has(lower) || REQUEST_DROP.has(lower) || lower.startsWith('proxy-') || lower.startsWith('sec-') || lower.startsWith('x-porthole-')) continue;
    if (++n > 100) break; // proto allows 128 fields; leave room for ours
    const k = canonicalKey(name);
    (header[k] ||= []).push(value);
  }
  if (cookie && validFieldValue(cookie)) header.Cookie = [cookie];
  if (origin === 'null' || validOrigin(origin)) header.Origin = [origin];
  if (validReferrer(referrer)) header.Referer = [referrer];
  if (credentials && /^[A-Za-z0-9+/]+=*$/.test(credentials)) header[CREDENTIALS_HEADER] = [credentials];
  const head = { method, target, contentLength };
  if (Object.keys(header).length) head.header = header;
  if (validOrigin(clientOrigin)) head.clientOrigin = clientOrigin;
  return head;
}

/**
 * The Origin header the browser sends with req, as the worker can tell it
 * (a worker does not see the header on most requests): the header itself
 * when present (form submissions), none on navigations and GET/HEAD
 * requests, and otherwise the request's own origin, since only this origin's
 * documents send the worker their subresource requests — or "null" under a
 * no-referrer policy, as the Fetch standard serializes it.
 */
export function requestOrigin(req, selfOrigin) {
  const h = req.headers.get('origin');
  if (h) return h;
  if (req.mode === 'navigate' || req.method === 'GET' || req.method === 'HEAD') return '';
  return req.referrerPolicy === 'no-referrer' ? 'null' : selfOrigin;
}

/** The origin-form target of a URL: path and query, never the fragment. */
export function targetOf(url) {
  const u = new URL(url);
  return u.pathname + u.search;
}

/**
 * Filters a proto.ResponseHead header map ({Name: [values]}) into the
 * [name, value] pairs of the Response the worker builds, and adds the
 * session's policy (sessionPolicy). A device CSP keeps its restrictions
 * except frame-ancestors, which would block the shell's frame. A document
 * (opt.document) is never stored (no HTTP cache, no back-forward cache: it
 * must not outlive the session; Chromium 156 lets a no-store page into the
 * back-forward cache all the same, so the page shim keeps top-level windows
 * out, page/unstored.js) and is origin-keyed like every other page of the
 * origin; opt.topLevel says it is a top-level document.
 */
export function responseHeaders(header, opt = {}) {
  const out = [];
  for (const [name, values] of Object.entries(header || {})) {
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || RESPONSE_DROP.has(lower) || lower.startsWith('access-control-')) continue;
    for (const v of values) {
      if (lower === 'content-security-policy') {
        // The agent already added the session's policy: once is enough.
        if (v === DEVICE_CSP) continue;
        const kept = ['frame-ancestors', 'report-uri', 'report-to'].reduce(withoutDirective, v);
        if (kept) out.push([name, kept]);
        continue;
      }
      out.push([name, v]);
    }
  }
  out.push(['Content-Security-Policy', opt.shellOrigin ? sessionPolicy(opt.shellOrigin, !!opt.topLevel) : DEVICE_CSP]);
  out.push(['X-Content-Type-Options', 'nosniff']);
  out.push(['Referrer-Policy', DEVICE_REFERRER_POLICY]);
  if (opt.document) {
    for (let i = out.length - 1; i >= 0; i--) if (out[i][0].toLowerCase() === 'cache-control') out.splice(i, 1);
    out.push(['Cache-Control', 'no-store']);
    out.push(['Origin-Agent-Cluster', '?1']);
  }
  return out;
}

/** Removes one directive from a CSP header value ("a; b; c"). */
export function withoutDirective(policy, directive) {
  return policy
    .split(',') // a header value may hold several policies
    .map((p) => p.split(';').map((d) => d.trim()).filter((d) => d && d.split(/\s+/)[0].toLowerCase() !== directive).join('; '))
    .filter(Boolean)
    .join(', ');
}

/**
 * Decides what a 3xx with Location becomes. A Location on the session origin
 * (the agent rewrites the device's own absolute URLs to paths) is passed
 * through as a path; anything else would navigate the frame off the session
 * and becomes a notice instead (SECURITY 15).
 * Returns {location} or {offsite: url}.
 */
export function redirectTarget(location, selfOrigin, requestURL) {
  let u;
  try {
    u = new URL(location, requestURL);
  } catch {
    return { offsite: String(location).slice(0, 200) };
  }
  if (u.origin !== selfOrigin) return { offsite: u.href.slice(0, 200) };
  return { location: u.pathname + u.search + u.hash };
}

/**
 * Parses a "name=value" pair of ResponseHead.cookies for cookieStore.set.
 * Returns null for pairs the store would refuse.
 */
export function parseCookiePair(pair) {
  const i = pair.indexOf('=');
  if (i <= 0) return null;
  const name = pair.slice(0, i).trim();
  const value = pair.slice(i + 1).trim();
  if (!isToken(name) || (/[;,\s]/.test(value) && !/^"[^"]*"$/.test(value))) return null;
  return { name, value };
}

/**
 * Builds a Cookie header value from cookieStore.getAll() entries. Only
 * host-only cookies of the session origin count: a cookie with a Domain was
 * set for the parent domain, by another session's page tossing cookies at
 * its siblings, and never reaches this session's device.
 */
export function cookieHeader(cookies) {
  const parts = [];
  let size = 0;
  for (const c of cookies || []) {
    if (!c || !isToken(c.name) || typeof c.value !== 'string' || /[;\r\n]/.test(c.value)) continue;
    if (c.domain !== undefined && c.domain !== null) continue;
    const part = `${c.name}=${c.value}`;
    size += part.length + 2;
    if (size > MAX_HEAD / 4) break; // keep the head well under its limit
    parts.push(part);
  }
  return parts.join('; ');
}

/** Maps a tunnel error code to the HTTP status of the page the worker shows. */
export function statusForCode(code) {
  switch (code) {
    case 'device_timeout':
      return 504;
    case 'bad_request':
    case 'bad_message':
      return 400;
    case 'port_not_allowed':
    case 'forbidden':
      return 403;
    case 'too_large':
      return 413;
    case 'session_ended':
      return 410;
    case 'unavailable':
    case 'rate_limited':
    case 'agent_offline':
    case 'audit_backlog': // the agent serves nothing it cannot record; it resumes once its log drains
      return 503;
    default:
      return 502;
  }
}
