// A TCP connection to one of the session device's declared ports, as a
// WebSocket-like object (send, close, binaryType, readyState, protocol and
// the on* handlers), which is what noVNC's RFB accepts in place of a URL.
//
// It runs one TCP exchange (proto/tunnel.go) on a data channel of its own:
//
//   shell → agent: TCPOpen {port}  Data*  (End | Abort)
//   agent → shell: (TCPOpened | Abort)  Data*  (End | Abort)
//
// The agent resolves the port through its own table of the device's
// services and dials nothing else. The channel is not returned to the pool:
// a viewer holds its connection for the whole session, and closing the
// channel closes the connection.
//
// Sending waits while the channel's buffer is above the tunnel's high-water
// mark (a queue of chunks, bounded by what the viewer sends: a few bytes per
// input event); receiving hands each Data frame's bytes on as one message.
// Filter, when given, sees every chunk before it is sent and may drop it
// (view-only mode, see screen.js).

import { FrameType, TunnelError, encodeFrame, encodeJSONFrame, encodeAbort, decodeAbort, parseFrame, dataFrames } from './frames.js';
import { LABEL, HIGH_WATER, LOW_WATER } from './tunnel.js';

export class TunnelSocket {
  /**
   * @param {RTCPeerConnection} pc the session's peer connection
   * @param {number} port the device's declared port
   * @param {{filter?: ((bytes: Uint8Array) => Uint8Array | null) | null, viewOnly?: boolean}} [opt]
   */
  constructor(pc, port, opt = {}) {
    this.binaryType = 'arraybuffer';
    this.protocol = '';
    this.readyState = 'connecting';
    this.onopen = null;
    this.onmessage = null;
    this.onclose = null;
    this.onerror = null;
    this.filter = opt.filter || null;
    this.bytesIn = 0;
    this.bytesOut = 0;
    this.error = null;
    this.queue = [];
    this.dc = pc.createDataChannel(LABEL, { ordered: true });
    this.dc.binaryType = 'arraybuffer';
    this.dc.bufferedAmountLowThreshold = LOW_WATER;
    this.dc.onmessage = (e) => this.onFrame(e.data);
    this.dc.onbufferedamountlow = () => this.flush();
    this.dc.onclose = () => this.finish(this.error || new TunnelError('unavailable', 'data channel closed'));
    // viewOnly asks the agent to keep the stream view-only itself
    // (agent/rfbfilter), whatever this side sends later.
    const open = opt.viewOnly ? { port, viewOnly: true } : { port };
    this.dc.onopen = () => this.dc.send(encodeJSONFrame(FrameType.TCPOpen, open));
  }

  onFrame(data) {
    let f;
    try {
      if (typeof data === 'string') throw new TunnelError('bad_message', 'text message on a tunnel channel');
      f = parseFrame(data);
    } catch (err) {
      return this.fail(err);
    }
    switch (f.type) {
      case FrameType.TCPOpened:
        if (this.readyState !== 'connecting') return this.fail(new TunnelError('bad_message', 'tcp-opened twice'));
        this.readyState = 'open';
        this.onopen?.(new Event('open'));
        this.flush();
        return;
      case FrameType.Data:
        if (this.readyState !== 'open') return this.fail(new TunnelError('bad_message', 'data before tcp-opened'));
        this.bytesIn += f.payload.byteLength;
        // A copy: the payload is a view on the channel's message.
        this.onmessage?.(new MessageEvent('message', { data: f.payload.slice().buffer }));
        return;
      case FrameType.End:
        return this.fail(null);
      case FrameType.Abort:
        return this.fail(decodeAbort(f.payload));
      default:
        return this.fail(new TunnelError('bad_message', `unexpected frame 0x${f.type.toString(16)} in a tcp exchange`));
    }
  }

  /** @param {ArrayBuffer | ArrayBufferView} data */
  send(data) {
    if (this.readyState === 'closed' || this.readyState === 'closing') return;
    let bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (this.filter) {
      bytes = this.filter(bytes);
      if (!bytes || !bytes.byteLength) return;
    }
    for (const frame of dataFrames(bytes)) this.queue.push(frame);
    this.flush();
  }

  flush() {
    if (this.readyState !== 'open' || this.dc.readyState !== 'open') return;
    while (this.queue.length && this.dc.bufferedAmount <= HIGH_WATER) {
      const frame = this.queue.shift();
      this.bytesOut += frame.byteLength - 1;
      this.dc.send(frame);
    }
  }

  close() {
    if (this.readyState === 'closed') return;
    if (this.dc.readyState === 'open') {
      try {
        this.dc.send(encodeFrame(FrameType.End));
      } catch {
        // closing anyway
      }
    }
    this.fail(null);
  }

  /** Ends the connection; err null is a clean end. */
  fail(err) {
    if (err && this.dc.readyState === 'open') {
      try {
        this.dc.send(encodeAbort(err.code || 'internal', err.message));
      } catch {
        // closing anyway
      }
    }
    this.error = err;
    try {
      this.dc.close();
    } catch {
      // already closed
    }
    this.finish(err);
  }

  finish(err) {
    if (this.readyState === 'closed') return;
    this.readyState = 'closed';
    this.queue = [];
    if (err) this.onerror?.(new Event('error'));
    this.onclose?.(new CloseEvent('close', { code: err ? 1006 : 1000, reason: err ? String(err.message || '').slice(0, 123) : '', wasClean: !err }));
  }
}

/**
 * Drops what a VNC client sends in view-only mode: after the handshake,
 * client messages are a type byte and a fixed or length-prefixed body
 * (RFC 6143 7.5 and the community extensions noVNC uses). Input never
 * leaves: KeyEvent (4), PointerEvent (5), ClientCutText (6), SetDesktopSize
 * (251), XVP (250), QEMU key events (255). What keeps the picture coming
 * passes: SetPixelFormat (0), SetEncodings (2), FramebufferUpdateRequest
 * (3), EnableContinuousUpdates (150), Fence (248). A message that does not
 * parse, or of another type, is dropped with everything after it in the
 * chunk. handshakeDone tells when the RFB handshake is over (before it,
 * bytes pass: version, security, password, ClientInit).
 */
export function viewOnlyFilter(handshakeDone) {
  return (bytes) => {
    if (!handshakeDone()) return bytes;
    const keep = [];
    const at = (k) => (k < bytes.byteLength ? bytes[k] : -1);
    let i = 0;
    while (i < bytes.byteLength) {
      const t = bytes[i];
      let n = 0;
      let pass = false;
      switch (t) {
        case 0: n = 20; pass = true; break;
        case 2: n = at(i + 3) < 0 ? 0 : 4 + 4 * ((at(i + 2) << 8) | at(i + 3)); pass = true; break;
        case 3: n = 10; pass = true; break;
        case 150: n = 10; pass = true; break;
        case 248: n = at(i + 8) < 0 ? 0 : 9 + at(i + 8); pass = true; break;
        case 4: n = 8; break;
        case 5: n = 6; break;
        case 6: n = i + 8 > bytes.byteLength ? 0 : 8 + Math.abs(new DataView(bytes.buffer, bytes.byteOffset + i + 4, 4).getInt32(0)); break;
        case 250: n = 4; break;
        case 251: n = at(i + 6) < 0 ? 0 : 8 + 16 * at(i + 6); break;
        case 255: n = 12; break;
        default: n = 0;
      }
      if (!n || i + n > bytes.byteLength) break;
      if (pass) keep.push(bytes.subarray(i, i + n));
      i += n;
    }
    return keep.length ? concat(keep) : null;
  };
}

function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}
