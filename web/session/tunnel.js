// Origin: SHELL origin (the session window: the data channels of its one
// peer connection). The device origin never gets a reference to it.
//
// The browser half of the tunnel (proto/tunnel.go): HTTP exchanges carried
// on a pool of data channels of the session's one RTCPeerConnection.
//
// A channel carries one exchange at a time and goes back to the pool once
// both directions have ended, like an HTTP/1.1 keep-alive connection: pion
// never frees a closed channel (pion/webrtc#2672), so opening one per request
// would grow the agent's memory with every request. New channels open for
// concurrency up to a cap; requests beyond it wait for a free channel.

import {
  FrameType, TunnelError, parseFrame, encodeFrame, encodeJSONFrame, encodeAbort, dataFrames,
  decodeResponseHead, decodeAbort,
} from './frames.js';
import { buildRequestHead, NULL_BODY_STATUS } from './headers.js';

export const LABEL = 'porthole';
export const MAX_CHANNELS = 16;
// Sending stops while more than HIGH_WATER bytes wait in a channel's buffer
// and resumes at LOW_WATER (bufferedamountlow), so a large upload never
// queues more than about a megabyte in the browser.
export const HIGH_WATER = 1 << 20;
export const LOW_WATER = 256 << 10;
// Request bodies up to this size are read before the head is sent, so the
// device gets a Content-Length (embedded web servers often refuse chunked
// uploads); larger bodies stream with contentLength -1.
export const PREBUFFER = 1 << 20;

// How long the agent may take to end its direction after we cancelled.
export const CANCEL_GRACE = 10_000;

// A response body reaches the page through two more hops (the stream,
// transferred to the service worker, then the worker's Response), each of
// which costs a message per chunk between threads or processes. While the
// reader is behind, the frames that arrived meanwhile are handed over as
// one chunk of at most BATCH bytes, so a bulk download costs one hop per
// BATCH instead of one per 16 KiB frame; a reader that keeps up gets each
// frame at once, as before.
export const BATCH = 1 << 20;
// A bulk body (declared larger than BULK) is handed over in chunks of at
// least MIN_BATCH bytes, or what arrived within BATCH_WAIT ms of the
// stream's pull, even while the reader keeps up: each chunk costs the
// shell, the worker and the page a message and a wake-up, and at 16 KiB
// frames a 256 MiB download was 16,384 of them. Smaller bodies, streams
// of unknown length and documents keep one chunk per frame, so nothing
// that renders or polls as it arrives waits.
export const BULK = 1 << 20;
export const MIN_BATCH = 256 << 10;
export const BATCH_WAIT = 4;

const END = encodeFrame(FrameType.End);

/**
 * The source of a response body stream: Data payloads are queued here and
 * enqueued, joined, when the stream pulls (its queue is empty). Data
 * channels cannot be paused on the receiving side, so this queue holds
 * what the reader has not taken yet, as the stream's own queue did.
 */
export class BodySource {
  /** opts.minBatch: the smallest chunk handed over before opts.wait ms have passed (0: any). */
  constructor(onCancel, { minBatch = 0, wait = BATCH_WAIT } = {}) {
    this.onCancel = onCancel;
    this.minBatch = minBatch;
    this.wait = wait;
    this.parts = [];
    this.size = 0;
    this.ctl = null;
    this.wanted = false; // the stream pulled and has not been given a chunk yet
    this.timer = null; // ends the wait for minBatch bytes
  }

  start(c) {
    this.ctl = c;
  }

  pull() {
    this.wanted = true;
    this.offer();
  }

  cancel() {
    this.stopTimer();
    this.parts = [];
    this.size = 0;
    this.onCancel();
  }

  /** Queues a payload (a view that stays valid: each message has its own buffer). */
  push(bytes) {
    if (!bytes.byteLength) return;
    this.parts.push(bytes);
    this.size += bytes.byteLength;
    if (this.wanted) this.offer();
  }

  /** Gives the waiting stream a chunk if enough is queued, else waits at most this.wait ms for more. */
  offer() {
    if (!this.size) return;
    if (this.size >= this.minBatch) {
      this.wanted = false;
      this.flush();
      return;
    }
    this.timer ??= setTimeout(() => {
      this.timer = null;
      if (this.wanted && this.size) {
        this.wanted = false;
        this.flush();
      }
    }, this.wait);
  }

  stopTimer() {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Enqueues what is queued, as chunks of at most BATCH bytes. */
  flush(all = false) {
    this.stopTimer();
    do {
      let n = 0;
      let k = 0;
      while (k < this.parts.length && (k === 0 || n + this.parts[k].byteLength <= BATCH)) n += this.parts[k++].byteLength;
      const take = this.parts.splice(0, k);
      this.size -= n;
      let chunk = take[0];
      if (take.length > 1) {
        chunk = new Uint8Array(n);
        let off = 0;
        for (const p of take) {
          chunk.set(p, off);
          off += p.byteLength;
        }
      }
      this.ctl.enqueue(chunk);
    } while (all && this.size);
  }

  close() {
    if (this.size) this.flush(true);
    this.stopTimer();
    this.ctl.close();
  }

  error(err) {
    this.stopTimer();
    this.parts = [];
    this.size = 0;
    this.ctl.error(err);
  }
}

/** One data channel and the exchange it currently carries. */
class Channel {
  constructor(dc, onClose) {
    this.dc = dc;
    this.exchange = null;
    this.closed = false;
    dc.binaryType = 'arraybuffer';
    dc.bufferedAmountLowThreshold = LOW_WATER;
    // Handlers are set before the channel opens, so no early message is lost.
    dc.onmessage = (e) => this.onMessage(e.data);
    dc.onclose = () => this.onClosed(new TunnelError('unavailable', 'data channel closed'));
    dc.onerror = (e) => this.onClosed(new TunnelError('unavailable', `data channel error: ${e.error?.message || 'unknown'}`));
    this.onCloseHook = onClose;
  }

  onMessage(data) {
    if (typeof data === 'string') return this.fail(new TunnelError('bad_message', 'text message on a tunnel channel'));
    let frame;
    try {
      frame = parseFrame(data);
    } catch (err) {
      return this.fail(err);
    }
    if (!this.exchange) return this.fail(new TunnelError('bad_message', 'frame outside an exchange'));
    this.exchange.onFrame(frame);
  }

  /** Sends a frame; false if the channel is gone. */
  send(frame) {
    if (this.closed || this.dc.readyState !== 'open') return false;
    try {
      this.dc.send(frame);
      return true;
    } catch {
      return false;
    }
  }

  /** Resolves once the channel's send buffer is below the high-water mark. */
  writable() {
    if (this.dc.bufferedAmount <= HIGH_WATER || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.dc.removeEventListener('bufferedamountlow', done);
        this.dc.removeEventListener('close', done);
        resolve();
      };
      this.dc.addEventListener('bufferedamountlow', done);
      this.dc.addEventListener('close', done);
    });
  }

  /** A protocol violation or a cancellation that cannot be expressed in-band: close. */
  fail(err) {
    this.onClosed(err); // first, so the exchange sees this error, not "closed"
    try {
      this.dc.close();
    } catch {
      // already closed
    }
  }

  onClosed(err) {
    if (this.closed) return;
    this.closed = true;
    const ex = this.exchange;
    this.exchange = null;
    if (ex) ex.onChannelGone(err);
    this.onCloseHook(this);
  }
}

/** One HTTP exchange on one channel. */
class Exchange {
  constructor(channel, req, release) {
    this.ch = channel;
    this.req = req;
    this.release = release;
    this.sentEnd = false; // our direction ended (End or Abort sent)
    this.recvEnd = false; // the agent's direction ended
    this.cancelled = false;
    this.head = null;
    this.source = null; // of the response body stream, if any
    this.discardBody = req.method === 'HEAD';
    this.result = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  onFrame(f) {
    if (this.recvEnd) return this.ch.fail(new TunnelError('bad_message', 'frame after the response ended'));
    if (!this.head) {
      if (f.type === FrameType.Abort) {
        // A refusal in place of the response head.
        this.recvEnd = true;
        this.reject(decodeAbort(f.payload));
        this.abortOurs('canceled', 'the agent refused the request');
        return this.maybeDone();
      }
      if (f.type !== FrameType.Response) return this.ch.fail(new TunnelError('bad_message', 'expected a response head'));
      try {
        this.head = decodeResponseHead(f.payload);
      } catch (err) {
        return this.ch.fail(err);
      }
      let body = null;
      if (!this.discardBody && !NULL_BODY_STATUS.has(this.head.status)) {
        // Its cancel: the page stopped reading (a navigation, an aborted fetch).
        const declared = Number(this.head.header?.['Content-Length']?.[0]);
        this.source = new BodySource(() => this.cancel(), { minBatch: declared > BULK ? MIN_BATCH : 0 });
        body = new ReadableStream(this.source);
      }
      this.resolve({ head: this.head, body });
      return;
    }
    switch (f.type) {
      case FrameType.Data:
        // Data channels cannot be paused on the receiving side; the chunk
        // is queued until the worker reads it. Payload views the message's
        // own buffer, so no copy is needed until chunks are joined.
        if (this.source && !this.cancelled) this.source.push(f.payload);
        return;
      case FrameType.End:
        this.recvEnd = true;
        this.closeBody();
        // The response is complete; a request body still uploading is moot.
        this.abortOurs('canceled', 'response complete');
        return this.maybeDone();
      case FrameType.Abort: {
        this.recvEnd = true;
        this.errorBody(decodeAbort(f.payload));
        this.abortOurs('canceled', 'the agent aborted the response');
        return this.maybeDone();
      }
      default:
        return this.ch.fail(new TunnelError('bad_message', 'unexpected frame in a response'));
    }
  }

  closeBody() {
    if (this.source && !this.cancelled) {
      try {
        this.source.close();
      } catch {
        // already cancelled by the reader
      }
    }
  }

  errorBody(err) {
    if (this.source && !this.cancelled) {
      try {
        this.source.error(err);
      } catch {
        // already closed
      }
    }
  }

  /** Ends our direction with Abort if it is still open. */
  abortOurs(code, message) {
    if (this.sentEnd) return;
    this.sentEnd = true;
    this.stopSending = true;
    this.ch.send(encodeAbort(code, message));
  }

  /** Sends the request head and body, with flow control. */
  async sendRequest() {
    const { body } = this.req;
    let reader = null;
    const pre = [];
    let total = 0;
    let done = true;
    try {
      if (body) {
        reader = body.getReader();
        done = false;
        while (total <= PREBUFFER) {
          const r = await reader.read();
          if (r.done) {
            done = true;
            break;
          }
          const chunk = toBytes(r.value);
          if (chunk.byteLength) {
            pre.push(chunk);
            total += chunk.byteLength;
          }
        }
      }
      if (this.cancelled) throw new TunnelError('canceled', 'request cancelled');
      const head = buildRequestHead({
        method: this.req.method,
        target: this.req.target,
        headers: this.req.headers,
        cookie: this.req.cookie,
        credentials: this.req.credentials,
        origin: this.req.origin,
        referrer: this.req.referrer,
        clientOrigin: this.req.clientOrigin,
        contentLength: body ? (done ? total : -1) : 0,
      });
      if (!this.ch.send(encodeJSONFrame(FrameType.Request, head))) throw new TunnelError('unavailable', 'data channel closed');
      const sendBytes = async (bytes) => {
        for (const frame of dataFrames(bytes)) {
          // Backpressure: no more reading from the page's body while the
          // channel holds more than HIGH_WATER bytes.
          await this.ch.writable();
          if (this.stopSending) return;
          if (!this.ch.send(frame)) throw new TunnelError('unavailable', 'data channel closed');
        }
      };
      for (const chunk of pre) {
        await sendBytes(chunk);
        if (this.stopSending) break;
      }
      while (!done && !this.stopSending) {
        const r = await reader.read();
        if (r.done) break;
        await sendBytes(toBytes(r.value));
      }
      if (this.stopSending) {
        reader?.cancel().catch(() => {});
        return;
      }
      this.sentEnd = true;
      this.ch.send(END);
      this.maybeDone();
    } catch (err) {
      reader?.cancel().catch(() => {});
      const e = err instanceof TunnelError ? err : new TunnelError('canceled', `request body: ${err?.message || err}`);
      if (!this.head && !this.recvEnd) this.reject(e);
      if (this.ch.closed) return;
      this.abortOurs(e.code, e.detail);
      this.maybeDone();
    }
  }

  /**
   * Stops the exchange because the page no longer wants it (a navigation,
   * an aborted fetch). While our direction is open, Abort ends it. Once it
   * has ended with End, one Abort after the End is the agreed "stop" (see
   * agent/tunnel's doc): the agent ends its direction with Abort, or ignores
   * the stray frame if it had already ended. Either way the channel becomes
   * idle again once the agent's direction ends, so cancelling does not cost
   * a channel (pion never frees closed ones).
   */
  cancel() {
    if (this.cancelled || (this.sentEnd && this.recvEnd)) return;
    this.cancelled = true;
    if (!this.head) this.reject(new TunnelError('canceled', 'request cancelled'));
    if (this.recvEnd) {
      this.abortOurs('canceled', 'request cancelled');
      return this.maybeDone();
    }
    if (!this.sentEnd) this.abortOurs('canceled', 'request cancelled');
    else this.ch.send(encodeAbort('canceled', 'request cancelled'));
    // An agent that never ends its direction costs this channel, not the pool.
    setTimeout(() => {
      if (!this.recvEnd && this.ch.exchange === this) this.ch.fail(new TunnelError('canceled', 'no answer to a cancellation'));
    }, CANCEL_GRACE);
  }

  onChannelGone(err) {
    this.stopSending = true;
    if (!this.head) this.reject(err);
    else if (!this.recvEnd) this.errorBody(err);
    this.sentEnd = this.recvEnd = true;
  }

  maybeDone() {
    if (this.sentEnd && this.recvEnd && this.ch.exchange === this) {
      this.ch.exchange = null;
      this.release(this.ch);
    }
  }
}

function toBytes(v) {
  if (v instanceof Uint8Array) return v;
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  throw new TypeError('request body chunk is not bytes');
}

/**
 * The class of a request waiting for a free channel, from its
 * Request.destination: lower goes first, first come first served within a
 * class. It is the order Chromium's own network stack gives requests to
 * one host (documents, stylesheets and fonts first; scripts and fetch()
 * or XHR, whose destination is ''; images and media last), which the
 * direct page gets: with one FIFO queue, the 40-subresource page of the
 * bench (issue 21) had its status fetch wait behind 24 images for 130 ms
 * of its 140 ms tunnel time.
 */
export function priorityOf(dest) {
  switch (dest) {
    case 'document': case 'iframe': case 'frame': case 'style': case 'font':
      return 0;
    case 'image': case 'audio': case 'video': case 'track': case 'object': case 'embed':
      return 2;
    default:
      return 1;
  }
}

/** The pool of channels on one peer connection. */
export class Tunnel {
  constructor(pc, { maxChannels = MAX_CHANNELS } = {}) {
    this.pc = pc;
    this.max = maxChannels;
    this.idle = [];
    this.channels = new Set();
    this.opening = 0;
    this.waiters = [];
    this.closed = false;
  }

  /**
   * Creates the first channel. Call it before createOffer: the offer only
   * carries an application (SCTP) section if a channel exists. onOpen, if
   * given, is called when it opens.
   */
  prime(onOpen) {
    this.open().then((ch) => {
      onOpen?.();
      this.release(ch);
    }, () => {});
    // Chromium reads the connection's UDP socket with a 64 KiB receive
    // buffer (128 KiB in the kernel's accounting, about 56 datagrams)
    // unless a video channel asks for more: the video receive channel sets
    // the bundled transport's buffer to Chromium's video size (2 MiB in
    // the kernel, measured in Chromium 156). With the small buffer a bulk
    // download lost 7–16 % of its datagrams on loopback whenever the
    // network service was descheduled, and SCTP stalled for its 1 s
    // retransmission timeout again and again (2.7–5 MB/s for 32 MiB; with
    // it 11–16 MB/s). Chromium does so only if the section is answered:
    // the agent answers it with one codec and no track, so nothing is
    // ever sent on it (agent/peerconn).
    if (typeof this.pc.addTransceiver === 'function') {
      try {
        this.pc.addTransceiver('video', { direction: 'recvonly' });
      } catch {
        // no video support: the tunnel works, with the small buffer
      }
    }
  }

  /**
   * Runs one HTTP exchange. req: {method, target, headers, cookie, body
   * (ReadableStream or null), signal (AbortSignal, optional), credentials
   * (optional, see headers.js CREDENTIALS_HEADER), origin, referrer and
   * clientOrigin (optional, see headers.js buildRequestHead), priority
   * (optional, priorityOf: the order in which requests waiting for a
   * channel get one)}. Resolves with
   * {head: {status, header, cookies}, body: ReadableStream or null} once the
   * response head arrives; rejects with a TunnelError.
   */
  async fetch(req) {
    if (req.signal?.aborted) throw new TunnelError('canceled', 'request cancelled');
    const ch = await this.acquire(req.priority);
    const ex = new Exchange(ch, req, (c) => this.release(c));
    ch.exchange = ex;
    req.signal?.addEventListener('abort', () => ex.cancel(), { once: true });
    ex.sendRequest();
    return ex.result;
  }

  acquire(priority = 1) {
    if (this.closed) return Promise.reject(new TunnelError('session_ended', 'the session is over'));
    const ch = this.idle.pop();
    if (ch) return Promise.resolve(ch);
    if (this.channels.size + this.opening < this.max) return this.open();
    const p = Number.isInteger(priority) ? priority : 1;
    return new Promise((resolve, reject) => {
      // Behind every waiter of its class or a more urgent one.
      let i = this.waiters.findIndex((w) => w.priority > p);
      if (i < 0) i = this.waiters.length;
      this.waiters.splice(i, 0, { resolve, reject, priority: p });
    });
  }

  release(ch) {
    if (ch.closed || this.closed) return;
    const w = this.waiters.shift();
    if (w) w.resolve(ch);
    else this.idle.push(ch);
  }

  open() {
    this.opening++;
    return new Promise((resolve, reject) => {
      let dc;
      try {
        dc = this.pc.createDataChannel(LABEL, { ordered: true });
      } catch (err) {
        this.opening--;
        reject(new TunnelError('unavailable', `cannot open a data channel: ${err.message}`));
        return;
      }
      const ch = new Channel(dc, (c) => this.dropped(c));
      let settled = false;
      dc.addEventListener('open', () => {
        if (settled) return;
        settled = true;
        this.opening--;
        this.channels.add(ch);
        resolve(ch);
      }, { once: true });
      dc.addEventListener('close', () => {
        if (settled) return;
        settled = true;
        this.opening--;
        reject(new TunnelError('unavailable', 'data channel closed before opening'));
        this.refill();
      }, { once: true });
    });
  }

  dropped(ch) {
    this.channels.delete(ch);
    const i = this.idle.indexOf(ch);
    if (i >= 0) this.idle.splice(i, 1);
    this.refill();
  }

  /** A channel went away: open a replacement for a waiting request. */
  refill() {
    if (this.closed || !this.waiters.length || this.channels.size + this.opening >= this.max) return;
    const w = this.waiters.shift();
    this.open().then(w.resolve, w.reject);
  }

  /** Stats for the toolbar and tests. */
  stats() {
    return { channels: this.channels.size, idle: this.idle.length, waiting: this.waiters.length };
  }

  close() {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w.reject(new TunnelError('session_ended', 'the session is over'));
    for (const ch of [...this.channels]) ch.fail(new TunnelError('session_ended', 'the session is over'));
    this.idle = [];
  }
}
