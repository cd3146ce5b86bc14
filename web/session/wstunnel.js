// The browser half of WebSocket exchanges (proto/websocket.go): a WebSocket
// the device's page opens is carried on a tunnel channel, and the agent
// opens the real one to the device. This module runs one exchange on a
// channel of tunnel.js's pool; the page shim (shim/websocket.js) talks to it
// through the shell over a MessagePort (wsport.js).
//
//   shell → agent: WSOpen  WSMessage*  (WSClose | Abort)
//   agent → shell: (WSOpened | Abort)  WSMessage*  (WSClose | Abort)
//
// A message is one or more WSMessage frames: a flags byte (0x01 binary,
// 0x02 final) and up to 16 KiB of the message. Sending waits while the
// channel's buffer is above the tunnel's high-water mark, so a page that
// sends faster than the device reads sees its bufferedAmount grow instead
// of the browser's memory.

import { FrameType, TunnelError, encodeFrame, encodeJSONFrame, encodeAbort, decodeAbort, isToken, validFieldValue, MAX_CHUNK } from './frames.js';
import { CANCEL_GRACE } from './tunnel.js';

export const WS_BINARY = 0x01;
export const WS_FINAL = 0x02;
// proto.MaxWSMessage: the largest message either way.
export const MAX_WS_MESSAGE = 16 << 20;
export const MAX_WS_REASON = 123;

const encoder = new TextEncoder();
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Whether code may be sent in a close frame (RFC 6455 7.4). */
export function validCloseCode(code) {
  return Number.isInteger(code) && ((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999));
}

/** The FrameWSOpen for a page's WebSocket, validated as proto.WSOpen.Validate does. */
export function encodeWSOpen({ target, protocols = [], header, clientOrigin, port }) {
  if (typeof target !== 'string' || !target.startsWith('/') || target.startsWith('//') || /[\u0000-\u0020\u007f#]/.test(target)) {
    throw new TunnelError('bad_request', 'websocket target must be an absolute path');
  }
  const seen = new Set();
  for (const p of protocols) {
    if (!isToken(p) || p.length > 128 || seen.has(p)) throw new TunnelError('bad_request', 'invalid subprotocol');
    seen.add(p);
  }
  const open = { target };
  if (protocols.length) open.protocols = [...protocols];
  if (header && Object.keys(header).length) {
    for (const [k, vs] of Object.entries(header)) {
      if (!isToken(k) || !Array.isArray(vs) || !vs.every(validFieldValue)) throw new TunnelError('bad_request', 'invalid header');
    }
    open.header = header;
  }
  if (port) open.port = port;
  if (clientOrigin) open.clientOrigin = clientOrigin;
  return encodeJSONFrame(FrameType.WSOpen, open);
}

function decodeJSONPayload(payload, what) {
  try {
    return JSON.parse(utf8.decode(payload));
  } catch {
    throw new TunnelError('bad_message', `malformed ${what}`);
  }
}

/** Decodes FrameWSOpened: {protocol, cookies, deletedCookies, tls}. */
export function decodeWSOpened(payload) {
  const v = decodeJSONPayload(payload, 'websocket opened');
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new TunnelError('bad_message', 'websocket opened is not an object');
  for (const k of Object.keys(v)) {
    if (!['protocol', 'cookies', 'deletedCookies', 'tls'].includes(k)) throw new TunnelError('bad_message', 'unknown field in websocket opened');
  }
  if (v.protocol !== undefined && (!isToken(v.protocol) || v.protocol.length > 128)) throw new TunnelError('bad_message', 'invalid subprotocol');
  const list = (x, ok) => {
    if (x === undefined || x === null) return [];
    if (!Array.isArray(x) || x.length > 128 || !x.every(ok)) throw new TunnelError('bad_message', 'invalid cookies');
    return x;
  };
  return {
    protocol: v.protocol || '',
    cookies: list(v.cookies, validFieldValue),
    deletedCookies: list(v.deletedCookies, (c) => isToken(c) && c.length <= 256),
    tls: v.tls || null,
  };
}

/** Decodes FrameWSClose: {code, reason}; code 1005 when it carried none. */
export function decodeWSClose(payload) {
  if (!payload || payload.byteLength === 0) return { code: 1005, reason: '' };
  const v = decodeJSONPayload(payload, 'websocket close');
  const code = v?.code ?? 0;
  const reason = v?.reason ?? '';
  if ((code !== 0 && !validCloseCode(code)) || typeof reason !== 'string' || encoder.encode(reason).byteLength > MAX_WS_REASON || (code === 0 && reason)) {
    throw new TunnelError('bad_message', 'invalid websocket close');
  }
  return { code: code || 1005, reason };
}

/** The FrameWSClose for code (1005 or 0: none) and reason. */
export function encodeWSClose(code, reason = '') {
  if (!code || code === 1005) return encodeFrame(FrameType.WSClose);
  return encodeJSONFrame(FrameType.WSClose, reason ? { code, reason } : { code });
}

/** Splits one message into FrameWSMessage frames of at most MAX_CHUNK bytes of it. */
export function* wsMessageFrames(binary, bytes) {
  let off = 0;
  do {
    const end = Math.min(off + MAX_CHUNK, bytes.byteLength);
    const chunk = bytes.subarray(off, end);
    const payload = new Uint8Array(1 + chunk.byteLength);
    payload[0] = (binary ? WS_BINARY : 0) | (end === bytes.byteLength ? WS_FINAL : 0);
    payload.set(chunk, 1);
    yield encodeFrame(FrameType.WSMessage, payload);
    off = end;
  } while (off < bytes.byteLength);
}

/**
 * One WebSocket exchange on a tunnel channel. sink receives
 * message(binary, data) with data a string or a Uint8Array, and
 * close(code, reason, wasClean) once.
 */
class WSExchange {
  constructor(ch, tunnel, sink) {
    this.ch = ch;
    this.tunnel = tunnel;
    this.sink = sink;
    this.opened = null;
    this.sentEnd = false;
    this.recvEnd = false;
    this.closedSink = false;
    this.parts = [];
    this.size = 0;
    this.binary = false;
    this.sending = Promise.resolve();
    this.result = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  onFrame(f) {
    if (this.recvEnd) return this.ch.fail(new TunnelError('bad_message', 'frame after the websocket ended'));
    if (!this.opened) {
      if (f.type === FrameType.Abort) {
        this.recvEnd = true;
        this.reject(decodeAbort(f.payload));
        this.endOurs(encodeAbort('canceled', 'refused by the agent'));
        return this.maybeDone();
      }
      if (f.type !== FrameType.WSOpened) return this.ch.fail(new TunnelError('bad_message', 'expected websocket opened'));
      try {
        this.opened = decodeWSOpened(f.payload);
      } catch (err) {
        return this.ch.fail(err);
      }
      this.resolve(this.opened);
      return;
    }
    switch (f.type) {
      case FrameType.WSMessage:
        return this.onChunk(f.payload);
      case FrameType.WSClose: {
        this.recvEnd = true;
        let c;
        try {
          c = decodeWSClose(f.payload);
        } catch {
          c = { code: 1002, reason: '' };
        }
        // Answer the device's close, as a browser does, then tell the page.
        this.endOurs(encodeWSClose(c.code === 1005 ? 0 : c.code, c.reason));
        this.toSink(c.code, c.reason, true);
        return this.maybeDone();
      }
      case FrameType.Abort:
        this.recvEnd = true;
        this.endOurs(encodeAbort('canceled', 'websocket broke'));
        this.toSink(1006, '', false);
        return this.maybeDone();
      default:
        return this.ch.fail(new TunnelError('bad_message', 'unexpected frame in a websocket'));
    }
  }

  onChunk(payload) {
    const flags = payload[0];
    if (flags & ~(WS_BINARY | WS_FINAL)) return this.ch.fail(new TunnelError('bad_message', 'unknown websocket message flags'));
    const binary = (flags & WS_BINARY) !== 0;
    if (this.parts.length && binary !== this.binary) return this.ch.fail(new TunnelError('bad_message', 'websocket message changed type'));
    this.binary = binary;
    const data = payload.subarray(1);
    this.size += data.byteLength;
    if (this.size > MAX_WS_MESSAGE) {
      // Too big to hand to the page: fail the connection (close 1009).
      this.endOurs(encodeWSClose(1009, 'message too big'));
      this.recvEnd = true;
      this.toSink(1009, 'message too big', false);
      return this.ch.fail(new TunnelError('too_large', 'websocket message too big'));
    }
    this.parts.push(data.slice());
    if (!(flags & WS_FINAL)) return;
    const whole = join(this.parts, this.size);
    this.parts = [];
    this.size = 0;
    if (binary) return this.sink.message(true, whole);
    let text;
    try {
      text = utf8.decode(whole);
    } catch {
      // Invalid UTF-8 fails the connection (RFC 6455 8.1); the page sees 1006.
      this.endOurs(encodeWSClose(1007, 'invalid UTF-8'));
      this.toSink(1006, '', false);
      return;
    }
    this.sink.message(false, text);
  }

  toSink(code, reason, wasClean) {
    if (this.closedSink) return;
    this.closedSink = true;
    this.sink.close(code, reason, wasClean);
  }

  endOurs(frame) {
    if (this.sentEnd) return;
    this.sentEnd = true;
    this.ch.send(frame);
  }

  /** Sends one message (string or bytes) with flow control; resolves with its size once handed to the channel. */
  send(data) {
    const binary = typeof data !== 'string';
    const bytes = binary ? data : encoder.encode(data);
    if (bytes.byteLength > MAX_WS_MESSAGE) return Promise.reject(new TunnelError('too_large', 'websocket message too big'));
    // Messages go out in order, each whole before the next.
    this.sending = this.sending.then(async () => {
      for (const frame of wsMessageFrames(binary, bytes)) {
        await this.ch.writable();
        if (this.sentEnd) return 0;
        if (!this.ch.send(frame)) throw new TunnelError('unavailable', 'data channel closed');
      }
      return bytes.byteLength;
    });
    return this.sending;
  }

  /** Starts the closing handshake; the agent's close (or a timeout) ends it. */
  close(code, reason) {
    this.sending.catch(() => {}).then(() => {
      this.endOurs(encodeWSClose(code, reason));
      this.maybeDone();
      setTimeout(() => {
        if (!this.recvEnd && this.ch.exchange === this) {
          this.toSink(1006, '', false);
          this.ch.fail(new TunnelError('canceled', 'no answer to a websocket close'));
        }
      }, CANCEL_GRACE);
    });
  }

  onChannelGone(err) {
    if (!this.opened) this.reject(err);
    this.sentEnd = this.recvEnd = true;
    this.toSink(1006, '', false);
  }

  maybeDone() {
    if (this.sentEnd && this.recvEnd && this.ch.exchange === this) {
      this.ch.exchange = null;
      this.tunnel.release(this.ch);
    }
  }
}

function join(parts, size) {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(size);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}

/**
 * Opens a WebSocket to the device through tunnel. open: {target, protocols,
 * header, clientOrigin, port}. Resolves with {opened, send(data), close(code,
 * reason)} once the device accepted; rejects with a TunnelError when the
 * agent refused.
 */
export async function openWebSocket(tunnel, open, sink) {
  const frame = encodeWSOpen(open);
  const ch = await tunnel.acquire();
  const ex = new WSExchange(ch, tunnel, sink);
  ch.exchange = ex;
  if (!ch.send(frame)) {
    ex.onChannelGone(new TunnelError('unavailable', 'data channel closed'));
    throw new TunnelError('unavailable', 'data channel closed');
  }
  const opened = await ex.result;
  return { opened, send: (d) => ex.send(d), close: (code, reason) => ex.close(code, reason) };
}
