// The shell's signaling connection: one WebSocket to /v1/session on the
// session window's own host (shell origin, where the bind cookie is),
// carrying the versioned JSON envelopes of proto/signal.go.
// The envelope helpers are pure and exported for node --test; the Signaling
// class needs a browser (WebSocket).

import { checkJSON } from './strictjson.js';

export const VERSION = 1;
export const SOCKET_PROTOCOL = 'porthole.v1';
export const TOKEN_PROTOCOL_PREFIX = 'porthole.token.';
export const MAX_MESSAGE = 64 << 10; // proto.MaxSignalMessage

const TYPES = new Set(['hello', 'welcome', 'session.open', 'session.ready', 'session.end', 'offer', 'answer', 'candidate', 'error', 'session.path', 'ice.refresh', 'ice.servers', 'drain']);
const NEEDS_SESSION = new Set(['session.ready', 'session.end', 'offer', 'answer', 'candidate', 'session.path', 'ice.refresh', 'ice.servers']);
const SESSION_RE = /^[a-z0-9]{8,64}$/;

/**
 * Builds one envelope as JSON text, with the field order of proto.Envelope
 * (v, type, session, data) and session omitted when empty.
 */
export function envelope(type, session, data) {
  const env = { v: VERSION, type };
  if (session) env.session = session;
  if (data !== undefined && data !== null) env.data = data;
  return JSON.stringify(env);
}

/**
 * Parses and checks one envelope. Throws a coded error for what proto.Decode
 * would refuse; the payload is returned as is.
 */
export function parseEnvelope(text) {
  if (typeof text !== 'string') throw codedError('bad_message', 'binary signaling message');
  if (text.length > MAX_MESSAGE) throw codedError('too_large', 'signaling message too large');
  let env;
  try {
    checkJSON(text);
  } catch (err) {
    throw codedError('bad_message', err.message);
  }
  try {
    env = JSON.parse(text);
  } catch {
    throw codedError('bad_message', 'malformed JSON');
  }
  if (env === null || typeof env !== 'object' || Array.isArray(env)) throw codedError('bad_message', 'not an object');
  if (env.v !== VERSION) throw codedError('unsupported', `protocol version ${env.v}`);
  if (!TYPES.has(env.type)) throw codedError('unsupported', 'unknown message type');
  if (env.session !== undefined && (typeof env.session !== 'string' || !SESSION_RE.test(env.session))) {
    throw codedError('bad_message', 'malformed session id');
  }
  if (NEEDS_SESSION.has(env.type) && !env.session) throw codedError('bad_message', `${env.type} needs a session`);
  return { v: env.v, type: env.type, session: env.session || '', data: env.data };
}

/**
 * The candidate message for an RTCPeerConnection icecandidate event. A null
 * candidate (gathering done) is sent as {candidate: ""}, the end-of-candidates
 * form of proto.Candidate.
 */
export function candidateData(c) {
  if (!c || !c.candidate) return { candidate: '' };
  const d = { candidate: c.candidate };
  if (c.sdpMid !== null && c.sdpMid !== undefined) d.sdpMid = c.sdpMid;
  if (c.sdpMLineIndex !== null && c.sdpMLineIndex !== undefined) d.sdpMLineIndex = c.sdpMLineIndex;
  if (c.usernameFragment) d.usernameFragment = c.usernameFragment;
  return d;
}

/**
 * The session id in a session host name (shell-<session>.<domain> or
 * <session>.<domain>), or ''.
 */
export function sessionFromHost(hostname) {
  const labels = hostname.split('.');
  const id = labels[0].startsWith('shell-') ? labels[0].slice('shell-'.length) : labels[0];
  return labels.length > 1 && SESSION_RE.test(id) ? id : '';
}

function codedError(code, message) {
  return Object.assign(new Error(`${code}: ${message}`), { code, detail: message });
}

/**
 * One signaling connection. Messages are delivered to onmessage(env) in
 * order; onclose(code, reason) fires once, whoever closed.
 */
export class Signaling {
  constructor({ url, token, session }) {
    this.session = session || '';
    /** @type {(env: any) => void} */
    this.onmessage = () => {};
    /** @type {(code: number, reason: string) => void} */
    this.onclose = () => {};
    this.closed = false;
    // Browsers cannot set Authorization on a WebSocket; the token rides in
    // the subprotocol list and signaling answers with porthole.v1 only.
    this.ws = new WebSocket(url, [SOCKET_PROTOCOL, TOKEN_PROTOCOL_PREFIX + token]);
    this.opened = new Promise((resolve, reject) => {
      this.ws.addEventListener('open', () => resolve(), { once: true });
      this.ws.addEventListener('close', (e) => reject(codedError('unavailable', `signaling closed (${e.code})`)), { once: true });
    });
    this.ws.addEventListener('message', (e) => {
      let env;
      try {
        env = parseEnvelope(e.data);
      } catch (err) {
        console.warn('porthole: dropped signaling message:', err.message);
        return;
      }
      if (env.session && !this.session) this.session = env.session;
      this.onmessage(env);
    });
    this.ws.addEventListener('close', (e) => {
      if (this.closed) return;
      this.closed = true;
      this.onclose(e.code, e.reason);
    });
  }

  /** Sends one message; data is the payload object. */
  send(type, data) {
    if (this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(envelope(type, type === 'hello' ? '' : this.session, data));
    return true;
  }

  close() {
    this.closed = true;
    try {
      this.ws.close(1000, 'done');
    } catch {
      // already closing
    }
  }
}
