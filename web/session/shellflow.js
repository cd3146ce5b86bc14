// Origin: SHELL origin (pure, so node --test checks it).
//
// The session window's decisions (shell.js), without the browser: the OAuth
// callback and the token endpoint's answer, the bind answer, what the app's
// address asks to show, whom a message comes from and what it asks, what a
// signaling message says, and how the end reads. shell.js holds the state,
// the DOM and the peer connection and asks these functions what to do.

import { MSG, tunnelRequest, webSocketRequest } from './protocol.js';
import { t } from './messages.js';

// Why the session ended, by its end reason: the catalog's end.<reason>.
export const END_REASONS = new Set(['client', 'agent', 'expired', 'agent_lost', 'client_lost', 'admin', 'error']);

/** An Error with a wire code and the server's message (detail). */
export function coded(code, message) {
  return Object.assign(new Error(message ? `${code}: ${message}` : code), { code, detail: message });
}

/** Base64url without padding, as PKCE wants it. */
export function b64url(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** The origin of the app's authorization endpoint, '' if it is not an http(s) URL. */
export function appOrigin(endpoint) {
  try {
    const u = new URL(endpoint);
    return u.protocol === 'https:' || u.protocol === 'http:' ? u.origin : '';
  } catch {
    return '';
  }
}

/** The session ID in a hostname: the first label of shell-<session>.<sessions domain>. */
export function sessionIDOf(hostname) {
  const m = /^shell-([a-z0-9-]{1,64})\./.exec(hostname);
  return m ? m[1] : '';
}

/** The development-mode token a fragment hands over (#token=…), '' if none. */
export function fragmentToken(hash) {
  return new URLSearchParams(String(hash || '').slice(1)).get('token') || '';
}

/** What startAuthorization saved in sessionStorage, or null when it is missing or garbled. */
export function savedAuthorization(json) {
  try {
    return JSON.parse(json || 'null');
  } catch {
    return null;
  }
}

/**
 * The OAuth callback's verdict: the error to throw (a state that is not the
 * one this tab saved, an error from the authorization server), or null when
 * the code may be exchanged.
 */
export function callbackError(params, saved) {
  if (!saved || params.get('state') !== saved.state) return coded('unauthorized', t('join.stateMismatch'));
  if (params.get('error')) return coded('unauthorized', params.get('error_description') || params.get('error'));
  return null;
}

/** The token endpoint's answer: {token} or {error}. */
export function tokenAnswer(ok, status, body) {
  if (!ok || typeof body?.access_token !== 'string') {
    return { error: coded('unauthorized', body?.error_description || body?.error || t('join.tokenFailed', { status })) };
  }
  return { token: body.access_token };
}

/** The bind endpoint's refusal (anything but 204) as an error. */
export function bindError(status, body) {
  return coded(typeof body?.code === 'string' ? body.code : 'unauthorized', typeof body?.message === 'string' ? body.message : t('join.bindFailed', { status }));
}

/** Any failure of obtaining or binding the token, as a coded error. */
export function joinError(err) {
  return err?.code ? err : coded('unauthorized', err?.message || String(err));
}

/** The title of the end panel of a window that never joined. */
export function notJoinedTitle(code) {
  return code === 'session_in_use' ? t('ended.inUse') : t('ended.notJoined');
}

/**
 * What a failure does: 'refuse' before this window joined when the session
 * is someone else's (in use, a token not this window's), else 'end'.
 */
export function failAction(err, joined) {
  return !joined && (err?.code === 'session_in_use' || err?.code === 'unauthorized') ? 'refuse' : 'end';
}

/**
 * The viewer the app asked for (/?porthole-view=vnc&port=5900&view-only=1):
 * the device's screen or a terminal instead of its web page. Null for a
 * web page.
 */
export function viewOf(path, origin) {
  const u = new URL(path, origin);
  const kind = u.searchParams.get('porthole-view');
  const port = Number(u.searchParams.get('port'));
  if ((kind !== 'vnc' && kind !== 'ssh') || !Number.isInteger(port) || port < 1 || port > 65535) return null;
  return { kind, port, viewOnly: u.searchParams.get('view-only') === '1' };
}

/**
 * Whom a window message comes from: 'relay' (the hidden relay frame),
 * 'frame' (the page shim in the device frame) or '' for anything else —
 * another origin, another window, a frame that is gone.
 */
export function messageSource(e, { deviceOrigin, relay, frame }) {
  if (e.origin !== deviceOrigin) return '';
  if (relay && e.source === relay) return 'relay';
  if (frame && e.source === frame) return 'frame';
  return '';
}

/**
 * What a request from the relay or the worker's port asks: {kind:
 * 'fetch', req} (a tunnel request), {kind: 'ws', req} (a page WebSocket),
 * {kind: 'refuse', port} (a WebSocket request that does not pass: its
 * port is told so), or null for anything else.
 */
export function requestOf(m, ports) {
  const req = tunnelRequest(m, ports);
  if (req) {
    if (typeof m.relayed === 'number') req.relayed = m.relayed;
    return { kind: 'fetch', req };
  }
  const ws = webSocketRequest(m, ports);
  if (ws) return { kind: 'ws', req: ws };
  if (m?.type === MSG.ws && ports?.length === 1) return { kind: 'refuse', port: ports[0] };
  return null;
}

/** The relay's ready message: {error} when the worker could not start, else {}. */
export function relayReadyOf(m) {
  return typeof m.error === 'string' ? { error: coded('unsupported', m.error.slice(0, 300)) } : {};
}

/** What a popped-out tab's bar asks over the BroadcastChannel: 'publish', 'end' or ''. */
export function barRequest(m, ended) {
  if (m?.type === 'hello') return 'publish';
  if (m?.type === 'end' && !ended) return 'end';
  return '';
}

/**
 * session.ready's data, checked: the device as the toolbar names it, the
 * window's title, the expiry (ms, NaN when absent), the ICE servers and
 * the relay's ticket.
 */
export function readyOf(d) {
  const id = typeof d.device === 'string' ? d.device : '';
  const name = typeof d.deviceName === 'string' && d.deviceName ? d.deviceName : id;
  const site = typeof d.siteName === 'string' ? d.siteName : '';
  return {
    device: { id, name, site },
    title: t(site ? 'title.deviceSite' : 'title.device', { device: name || t('device.fallback'), site }),
    bar: site ? `${name} · ${site}` : name,
    expires: new Date(d.expires).getTime(),
    iceServers: Array.isArray(d.iceServers) ? d.iceServers : [],
    relayTicket: typeof d.relayTicket === 'string' ? d.relayTicket : '',
  };
}

/** session.end's data: {reason, message}, 'error' when it names no reason. */
export function endOf(d) {
  return { reason: typeof d.reason === 'string' ? d.reason : 'error', message: typeof d.message === 'string' ? d.message : '' };
}

/** What this window tells signaling when it ends the session itself. */
export function endNotice(reason, message) {
  const end = { reason: reason === 'client' ? 'client' : 'error' };
  if (message) end.message = message.slice(0, 500);
  return end;
}

/** The end panel's text: why the session ended, then the message. */
export function endText(reason, message) {
  return [END_REASONS.has(reason) ? t(`end.${reason}`) : t('ended.over'), message].filter(Boolean).join(' ');
}

/**
 * The end panel's way on, the session's job in the app ('' when there is
 * none: no app origin or session, or a session another window holds).
 */
export function againHref(app, session, code) {
  return app && session && code !== 'session_in_use' ? `${app}/#jobs/${session}` : '';
}

/** The answer to a request the shell cannot carry because the session ended. */
export function endedReply(endReason) {
  return { type: 'error', code: 'session_ended', message: endReason || 'session_ended' };
}

/** A failed request's answer to the worker. */
export function errorReply(err) {
  return { type: 'error', code: err.code || 'internal', message: err.detail || err.message || '' };
}

/**
 * The reply port of a request the worker sent by id on its port (sw.js
 * onShellReply), kept in table until answered: serve() answers on it as
 * on a MessagePort of the request's own (its one reply carries the id
 * back to port), and abort() hands the worker's {type: 'abort', id} to its
 * onmessage.
 */
export function muxPort(port, id, table) {
  const p = {
    onmessage: null,
    postMessage(v, transfer = []) {
      table.delete(id);
      port.postMessage({ ...v, id }, transfer);
    },
    abort() {
      p.onmessage?.({ data: { type: 'abort' } });
    },
  };
  table.set(id, p);
  return p;
}
