// A stand-in for RTCPeerConnection and RTCDataChannel, enough for tunnel.js:
// channels open on the next tick, record what is sent, count bufferedAmount
// until the test drains it, and deliver frames the test plays as the agent.

import { parseFrame } from '../session/frames.js';

export class FakeDataChannel extends EventTarget {
  constructor(label, options, pc) {
    super();
    this.label = label;
    this.options = options;
    this.pc = pc;
    this.readyState = 'connecting';
    this.bufferedAmount = 0;
    this.bufferedAmountLowThreshold = 0;
    this.binaryType = 'blob';
    this.sent = []; // decoded frames {type, payload}
    this.onmessage = null;
    this.onclose = null;
    this.onerror = null;
  }

  fire(type, ev = new Event(type)) {
    this[`on${type}`]?.(ev);
    this.dispatchEvent(ev);
  }

  open() {
    this.readyState = 'open';
    this.fire('open');
  }

  send(data) {
    if (this.readyState !== 'open') throw new Error('InvalidStateError');
    const copy = new Uint8Array(data).slice();
    this.sent.push(parseFrame(copy));
    this.bufferedAmount += copy.byteLength;
    this.pc.onSend?.(this);
  }

  /** The network took everything: bufferedAmount falls to zero. */
  drain() {
    const was = this.bufferedAmount;
    this.bufferedAmount = 0;
    if (was > this.bufferedAmountLowThreshold) this.fire('bufferedamountlow');
  }

  /** The agent sends a frame (Uint8Array). */
  deliver(frame) {
    const ev = new Event('message');
    ev.data = frame.buffer.slice(frame.byteOffset, frame.byteOffset + frame.byteLength);
    this.fire('message', ev);
  }

  close() {
    if (this.readyState === 'closed') return;
    this.readyState = 'closed';
    this.fire('close');
  }
}

export class FakePeerConnection {
  constructor({ autoOpen = true } = {}) {
    this.channels = [];
    this.transceivers = [];
    this.autoOpen = autoOpen;
    this.onSend = null;
  }

  addTransceiver(kind, init) {
    this.transceivers.push({ kind, ...init });
  }

  createDataChannel(label, options) {
    const dc = new FakeDataChannel(label, options, this);
    this.channels.push(dc);
    if (this.autoOpen) setTimeout(() => dc.open(), 0);
    return dc;
  }
}

/** Resolves after pending timers and microtasks ran. */
export const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));
