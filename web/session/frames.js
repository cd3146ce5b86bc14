// Origin: both origins (the shell's tunnel.js; the device origin's worker,
// through headers.js); pure, holds nothing.
//
// The tunnel frame protocol of proto/tunnel.go, as carried on a data channel:
// one message is one frame, a 1-byte type followed by its payload. This module
// only encodes and decodes; tunnel.js runs the exchanges. It touches no
// browser API so that node --test can check it against the Go rules.

import { checkJSON } from './strictjson.js';

export const FrameType = Object.freeze({
  Request: 0x01, // JSON RequestHead, opens an HTTP exchange
  Response: 0x02, // JSON ResponseHead
  TCPOpen: 0x03, // JSON TCPOpen (not used by the browser)
  TCPOpened: 0x04, // empty
  Data: 0x10, // raw body bytes, 1 … MAX_CHUNK
  End: 0x11, // empty: this direction is complete
  Abort: 0x12, // JSON {code, message}: this direction ended abnormally
  // WebSockets (proto/websocket.go, wsframes.js)
  WSOpen: 0x05, // JSON WSOpen, opens a WebSocket exchange
  WSOpened: 0x06, // JSON WSOpened: the device accepted the upgrade
  WSMessage: 0x13, // flags byte (binary 0x01, final 0x02), then a chunk of a message
  WSClose: 0x14, // JSON {code, reason}, or empty: this direction is complete
  // Terminals (proto/ssh.go, terminal.js)
  SSHOpen: 0x07, // JSON SSHOpen: port, login, terminal size
  SSHOpened: 0x08, // JSON {hostKey, firstUse}: logged in, the shell runs
  SSHResize: 0x15, // JSON {cols, rows}: a window change
});

// Limits, equal to proto.MaxChunk, proto.MaxHead and proto.MaxFrame.
export const MAX_CHUNK = 16 << 10;
export const MAX_HEAD = 32 << 10;
export const MAX_FRAME = 1 + MAX_HEAD;

const MAX_TEXT = 512; // proto.MaxText: longest abort message we keep

// The stable codes of proto/errors.go. An abort with another code decodes as
// "internal", as proto.DecodeAbort does.
export const CODES = new Set([
  'bad_message', 'too_large', 'unsupported', 'unauthorized', 'forbidden', 'not_found',
  'agent_offline', 'session_not_found', 'session_ended', 'device_not_found',
  'port_not_allowed', 'device_failed', 'device_timeout', 'bad_request', 'canceled',
  'rate_limited', 'unavailable', 'internal', 'audit_backlog',
]);

/** A coded error, shaped like proto.Error on the wire. */
export class TunnelError extends Error {
  constructor(code, message) {
    super(message ? `${code}: ${message}` : code);
    this.name = 'TunnelError';
    this.code = code;
    this.detail = message || '';
  }
  toJSON() {
    return this.detail ? { code: this.code, message: this.detail } : { code: this.code };
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** Encodes one frame. payload is a Uint8Array or absent. */
export function encodeFrame(type, payload) {
  const n = payload ? payload.byteLength : 0;
  const out = new Uint8Array(1 + n);
  out[0] = type;
  if (n) out.set(payload, 1);
  return out;
}

/** Encodes a head or abort frame with a JSON payload, checking MAX_HEAD. */
export function encodeJSONFrame(type, value) {
  const payload = encoder.encode(JSON.stringify(value));
  if (payload.byteLength > MAX_HEAD) {
    throw new TunnelError('too_large', `head is ${payload.byteLength} bytes, limit ${MAX_HEAD}`);
  }
  return encodeFrame(type, payload);
}

/** Encodes the FrameAbort for a coded error. */
export function encodeAbort(code, message) {
  const body = { code: CODES.has(code) ? code : 'internal' };
  if (message) body.message = String(message).slice(0, MAX_TEXT);
  return encodeJSONFrame(FrameType.Abort, body);
}

/**
 * Splits bytes into Data frames of at most MAX_CHUNK bytes each, without
 * copying more than the frame header requires.
 */
export function* dataFrames(bytes) {
  for (let off = 0; off < bytes.byteLength; off += MAX_CHUNK) {
    yield encodeFrame(FrameType.Data, bytes.subarray(off, Math.min(off + MAX_CHUNK, bytes.byteLength)));
  }
}

/**
 * Decodes one data-channel message (ArrayBuffer or Uint8Array) with the size
 * rules of proto.ParseFrame. The payload is a view on the message.
 */
export function parseFrame(msg) {
  const bytes = msg instanceof Uint8Array ? msg : new Uint8Array(msg);
  if (bytes.byteLength === 0) throw new TunnelError('bad_message', 'empty tunnel frame');
  if (bytes.byteLength > MAX_FRAME) {
    throw new TunnelError('too_large', `tunnel frame is ${bytes.byteLength} bytes, limit ${MAX_FRAME}`);
  }
  const type = bytes[0];
  const payload = bytes.subarray(1);
  switch (type) {
    case FrameType.Request:
    case FrameType.Response:
    case FrameType.TCPOpen:
    case FrameType.Abort:
    case FrameType.WSOpen:
    case FrameType.WSOpened:
    case FrameType.SSHOpen:
    case FrameType.SSHOpened:
    case FrameType.SSHResize:
      if (payload.byteLength === 0) throw new TunnelError('bad_message', `frame 0x${hex(type)} without payload`);
      break;
    case FrameType.Data:
      if (payload.byteLength > MAX_CHUNK || payload.byteLength === 0) {
        throw new TunnelError('bad_message', `data frame of ${payload.byteLength} bytes, want 1 to ${MAX_CHUNK}`);
      }
      break;
    case FrameType.WSMessage:
      if (payload.byteLength === 0 || payload.byteLength > 1 + MAX_CHUNK) {
        throw new TunnelError('bad_message', `websocket message frame of ${payload.byteLength} bytes, want 1 to ${1 + MAX_CHUNK}`);
      }
      break;
    case FrameType.WSClose:
      break; // empty: a close without a code
    case FrameType.TCPOpened:
    case FrameType.End:
      if (payload.byteLength !== 0) throw new TunnelError('bad_message', `frame 0x${hex(type)} with payload`);
      break;
    default:
      throw new TunnelError('bad_message', `unknown tunnel frame type 0x${hex(type)}`);
  }
  return { type, payload };
}

function hex(b) {
  return b.toString(16).padStart(2, '0');
}

function decodeJSON(payload) {
  let text;
  try {
    text = decoder.decode(payload);
  } catch {
    throw new TunnelError('bad_message', 'head is not UTF-8');
  }
  try {
    checkJSON(text);
  } catch (err) {
    throw new TunnelError('bad_message', err.message);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new TunnelError('bad_message', 'malformed head');
  }
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

// A field value may not carry control bytes other than tab (no CR or LF to
// inject headers with), as proto's validFieldValue.
// eslint-disable-next-line no-control-regex
const badValue = /[\u0000-\u0008\u000a-\u001f\u007f]/;
const tokenRe = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Checks a header name as an RFC 9110 token. */
export function isToken(s) {
  return typeof s === 'string' && tokenRe.test(s);
}

/** Checks a header field value. */
export function validFieldValue(v) {
  return typeof v === 'string' && !badValue.test(v);
}

/**
 * Decodes and validates a FrameResponse payload into
 * {status, header: {Name: [values]}, cookies: [...]} as proto.DecodeResponseHead.
 */
export function decodeResponseHead(payload) {
  const v = decodeJSON(payload);
  if (!isObject(v)) throw new TunnelError('bad_message', 'response head is not an object');
  for (const k of Object.keys(v)) {
    if (k !== 'status' && k !== 'header' && k !== 'cookies' && k !== 'deletedCookies' && k !== 'tls') {
      throw new TunnelError('bad_message', `unknown field ${JSON.stringify(k).slice(0, 40)} in response head`);
    }
  }
  const status = v.status;
  if (!Number.isInteger(status) || status < 100 || status > 999) {
    throw new TunnelError('bad_message', `status ${String(status).slice(0, 20)} out of range`);
  }
  const header = {};
  let n = 0;
  if (v.header !== undefined && v.header !== null) {
    if (!isObject(v.header)) throw new TunnelError('bad_message', 'header is not an object');
    for (const [k, vs] of Object.entries(v.header)) {
      if (!isToken(k)) throw new TunnelError('bad_message', 'invalid header name');
      if (!Array.isArray(vs)) throw new TunnelError('bad_message', 'header values are not a list');
      for (const x of vs) {
        if (++n > 128) throw new TunnelError('too_large', 'over 128 header fields');
        if (!validFieldValue(x)) throw new TunnelError('bad_message', `invalid value for header ${k.slice(0, 40)}`);
      }
      const ck = canonicalKey(k);
      header[ck] = (header[ck] || []).concat(vs);
    }
  }
  let cookies = [];
  if (v.cookies !== undefined && v.cookies !== null) {
    if (!Array.isArray(v.cookies) || v.cookies.length > 128) throw new TunnelError('bad_message', 'invalid cookies');
    for (const c of v.cookies) {
      if (!validFieldValue(c)) throw new TunnelError('bad_message', 'invalid cookie');
    }
    cookies = v.cookies;
  }
  let deletedCookies = [];
  if (v.deletedCookies !== undefined && v.deletedCookies !== null) {
    if (!Array.isArray(v.deletedCookies) || v.deletedCookies.length > 128) throw new TunnelError('bad_message', 'invalid deleted cookies');
    for (const c of v.deletedCookies) {
      if (!isToken(c) || c.length > 256) throw new TunnelError('bad_message', 'invalid deleted cookie name');
    }
    deletedCookies = v.deletedCookies;
  }
  const tls = decodeLegacyTLS(v.tls);
  const out = { status, header, cookies };
  // Present only when the agent sent them (agent/deviceproxy, issue 13).
  if (deletedCookies.length) out.deletedCookies = deletedCookies;
  if (tls) out.tls = tls;
  return out;
}

/**
 * Decodes a proto.LegacyTLS report ({version, cipher, needs, note}), null
 * when absent. Every field is text for people; control bytes are refused.
 */
export function decodeLegacyTLS(t) {
  if (t === undefined || t === null) return null;
  if (!isObject(t)) throw new TunnelError('bad_message', 'tls is not an object');
  for (const k of Object.keys(t)) {
    if (!['version', 'cipher', 'needs', 'note'].includes(k)) throw new TunnelError('bad_message', 'unknown field in tls');
  }
  const text = (x, max) => {
    if (x === undefined) return '';
    if (typeof x !== 'string' || x.length > max || !validFieldValue(x)) throw new TunnelError('bad_message', 'invalid tls report');
    return x;
  };
  const needs = t.needs === undefined ? [] : t.needs;
  if (!Array.isArray(needs) || needs.length > 8) throw new TunnelError('bad_message', 'invalid tls needs');
  return { version: text(t.version, 32), cipher: text(t.cipher, 128), needs: needs.map((n) => text(n, 64)), note: text(t.note, MAX_TEXT) };
}

/** Decodes a FrameAbort payload; like proto.DecodeAbort it never fails. */
export function decodeAbort(payload) {
  let v;
  try {
    v = decodeJSON(payload);
  } catch {
    return new TunnelError('bad_message', 'malformed abort');
  }
  if (!isObject(v)) return new TunnelError('bad_message', 'malformed abort');
  const code = CODES.has(v.code) ? v.code : 'internal';
  const message = typeof v.message === 'string' ? v.message.slice(0, MAX_TEXT) : '';
  return new TunnelError(code, message);
}

/**
 * Go's http.CanonicalHeaderKey: upper-case the first letter and each letter
 * after a hyphen, lower-case the rest. Keys that are not tokens stay as they
 * are, as in Go.
 */
export function canonicalKey(k) {
  if (!isToken(k)) return k;
  let upper = true;
  let out = '';
  for (const c of k) {
    out += upper ? c.toUpperCase() : c.toLowerCase();
    upper = c === '-';
  }
  return out;
}
