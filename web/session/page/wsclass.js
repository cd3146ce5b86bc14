// The page shim's WebSocket class (issue 13), a part of /__t/page.js
// (web.go pageParts; page/websocket.js installs it). It runs in the device
// page's own realm and behaves like the native WebSocket — events,
// readyState, binaryType, protocol, text and binary messages, close codes,
// bufferedAmount — but is carried by the session's tunnel: a service
// worker cannot intercept WebSockets. It is a compatibility aid, not a
// security boundary: everything it does, the page could do itself, and
// what it can reach is what the worker and the shell accept (a WebSocket to
// a path of the session's own device, nothing else).
//
// How a socket travels: the shim posts {type: 'porthole.ws', target,
// protocols} with a MessagePort to the service worker that controls the
// page; the worker adds the page's cookies and hands the port, through the
// relay frame, to the session window (protocol.js webSocketRequest), which
// runs the exchange on a tunnel channel (wsport.js, wstunnel.js).
// Over the port:
//   shim → shell  {type: 'send', data}            data: string or ArrayBuffer
//                 {type: 'close', code, reason}
//   shell → shim  {type: 'open', protocol, cookies, deletedCookies}
//                 {type: 'message', data}          string or ArrayBuffer
//                 {type: 'sent', n}                n bytes left the page's buffer
//                 {type: 'close', code, reason, wasClean}
//
// A URL on another host than the session's (the page's location.host) is
// left to the native WebSocket: the session's policy (connect-src 'self')
// refuses it, as before.
//
// A classic script, not a module (the bundle is one): node's tests load it
// with new Function (web/test/page-websocket.test.js).

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;
const MAX_REASON = 123;

const tokenRe = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Builds the WebSocket class for a realm. env: {location (the page's),
 * connect(target, protocols) → MessagePort, NativeWebSocket, Blob,
 * MessageEvent, CloseEvent, DOMException, EventTarget, Event, and
 * onCookies(set, deleted) (optional): the device's cookies at the open}.
 */
function createWebSocketClass(env) {
  const { location, connect, NativeWebSocket } = env;
  const EventTargetBase = env.EventTarget;
  const Ev = env.Event;
  const MessageEv = env.MessageEvent;
  const DOMEx = env.DOMException;
  const BlobCtor = env.Blob;
  const CloseEv = env.CloseEvent || class extends Ev {
    constructor(type, init = {}) {
      super(type, init);
      this.code = init.code ?? 0;
      this.reason = init.reason ?? '';
      this.wasClean = init.wasClean ?? false;
    }
  };
  const encoder = new TextEncoder();
  const HANDLERS = ['open', 'message', 'error', 'close'];

  class WebSocket extends EventTargetBase {
    #url;
    #state = CONNECTING;
    #protocol = '';
    #binaryType = 'blob';
    #buffered = 0;
    #port = null;
    #sending = Promise.resolve();

    constructor(url, protocols = []) {
      // A URL to anywhere else than the session is the native socket's.
      const u = parseURL(url, location, DOMEx);
      if (u.host !== location.host && NativeWebSocket) {
        return new NativeWebSocket(url, protocols);
      }
      super();
      if (typeof protocols === 'string') protocols = [protocols];
      protocols = [...protocols].map(String);
      const seen = new Set();
      for (const p of protocols) {
        if (!tokenRe.test(p) || seen.has(p)) throw new DOMEx(`Failed to construct 'WebSocket': The subprotocol '${p}' is invalid.`, 'SyntaxError');
        seen.add(p);
      }
      this.#url = u.href;
      for (const type of HANDLERS) {
        this.addEventListener(type, (e) => {
          const h = handlerGet(this, type);
          if (typeof h === 'function') h.call(this, e);
        });
      }
      let port;
      try {
        port = connect(u.pathname + u.search, protocols);
      } catch {
        port = null;
      }
      if (!port) {
        // Nothing to carry it (no controlling worker): fail as a refused
        // connection does, asynchronously.
        queueMicrotask(() => this.#fail());
        return;
      }
      this.#port = port;
      port.onmessage = (e) => this.#onPortMessage(e.data);
      port.start?.();
    }

    #onPortMessage(m) {
      if (!m || typeof m !== 'object') return;
      switch (m.type) {
        case 'open':
          if (this.#state !== CONNECTING) return;
          this.#state = OPEN;
          this.#protocol = typeof m.protocol === 'string' ? m.protocol : '';
          try {
            env.onCookies?.(Array.isArray(m.cookies) ? m.cookies : [], Array.isArray(m.deletedCookies) ? m.deletedCookies : []);
          } catch {
            // a store that refuses them
          }
          this.dispatchEvent(new Ev('open'));
          return;
        case 'message': {
          if (this.#state !== OPEN) return;
          let data = m.data;
          if (typeof data !== 'string') {
            if (!(data instanceof ArrayBuffer)) return;
            if (this.#binaryType === 'blob') data = new BlobCtor([data]);
          }
          this.dispatchEvent(new MessageEv('message', { data, origin: new URL(this.#url).origin }));
          return;
        }
        case 'sent':
          if (Number.isFinite(m.n) && m.n > 0) this.#buffered = Math.max(0, this.#buffered - m.n);
          return;
        case 'close':
          this.#closed(Number.isInteger(m.code) ? m.code : 1006, typeof m.reason === 'string' ? m.reason : '', m.wasClean === true);
      }
    }

    #closed(code, reason, wasClean) {
      if (this.#state === CLOSED) return;
      this.#state = CLOSED;
      this.#port?.close();
      if (!wasClean) this.dispatchEvent(new Ev('error'));
      this.dispatchEvent(new CloseEv('close', { code, reason, wasClean }));
    }

    #fail() {
      this.#closed(1006, '', false);
    }

    get url() { return this.#url; }
    get readyState() { return this.#state; }
    get bufferedAmount() { return this.#buffered; }
    get extensions() { return ''; }
    get protocol() { return this.#protocol; }
    get binaryType() { return this.#binaryType; }
    set binaryType(v) {
      if (v === 'blob' || v === 'arraybuffer') this.#binaryType = v;
    }

    send(data) {
      if (this.#state === CONNECTING) throw new DOMEx("Failed to execute 'send' on 'WebSocket': Still in CONNECTING state.", 'InvalidStateError');
      let size;
      let payload;
      if (typeof data === 'string' || !(data instanceof ArrayBuffer || ArrayBuffer.isView(data) || data instanceof BlobCtor)) {
        const s = String(data);
        size = encoder.encode(s).byteLength;
        payload = Promise.resolve(s);
      } else if (data instanceof ArrayBuffer) {
        size = data.byteLength;
        payload = Promise.resolve(data.slice(0));
      } else if (ArrayBuffer.isView(data)) {
        size = data.byteLength;
        payload = Promise.resolve(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
      } else {
        size = data.size;
        payload = data.arrayBuffer();
      }
      // Counted even once closing, as the native socket does; sent only while open.
      this.#buffered += size;
      if (this.#state !== OPEN) return;
      // In order, whatever a Blob's read takes.
      this.#sending = this.#sending.then(() => payload).then((p) => {
        if (this.#state !== OPEN || !this.#port) return;
        this.#port.postMessage({ type: 'send', data: p }, typeof p === 'string' ? [] : [p]);
      }, () => this.#fail());
    }

    close(code, reason) {
      if (code !== undefined && !(code === 1000 || (Number.isInteger(code) && code >= 3000 && code <= 4999))) {
        throw new DOMEx(`Failed to execute 'close' on 'WebSocket': The close code must be either 1000, or between 3000 and 4999. ${code} is neither.`, 'InvalidAccessError');
      }
      reason = reason === undefined ? '' : String(reason);
      if (encoder.encode(reason).byteLength > MAX_REASON) {
        throw new DOMEx("Failed to execute 'close' on 'WebSocket': The message must not be greater than 123 bytes.", 'SyntaxError');
      }
      if (this.#state === CLOSING || this.#state === CLOSED) return;
      const wasConnecting = this.#state === CONNECTING;
      this.#state = CLOSING;
      if (!this.#port) return this.#fail();
      this.#sending.then(() => {
        this.#port?.postMessage({ type: 'close', code: wasConnecting ? 0 : code ?? 0, reason: wasConnecting ? '' : reason });
      });
    }
  }
  for (const type of HANDLERS) {
    Object.defineProperty(WebSocket.prototype, `on${type}`, {
      get() { return handlerGet(this, type); },
      set(v) { handlerSet(this, type, v); },
      configurable: true,
      enumerable: true,
    });
  }
  for (const [k, v] of Object.entries({ CONNECTING, OPEN, CLOSING, CLOSED })) {
    Object.defineProperty(WebSocket, k, { value: v, enumerable: true });
    Object.defineProperty(WebSocket.prototype, k, { value: v, enumerable: true });
  }
  return WebSocket;
}

// Event handler attributes, kept outside the instance's own properties so
// that a page enumerating the socket sees what it would on a native one.
const handlerMaps = new WeakMap();
function handlerGet(ws, type) {
  return handlerMaps.get(ws)?.[type] ?? null;
}
function handlerSet(ws, type, v) {
  let m = handlerMaps.get(ws);
  if (!m) handlerMaps.set(ws, (m = {}));
  m[type] = typeof v === 'function' ? v : null;
}

function parseURL(url, location, DOMEx) {
  let u;
  try {
    u = new URL(String(url), location.href);
  } catch {
    throw new DOMEx(`Failed to construct 'WebSocket': The URL '${url}' is invalid.`, 'SyntaxError');
  }
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') {
    throw new DOMEx(`Failed to construct 'WebSocket': The URL's scheme must be either 'http', 'https', 'ws', or 'wss'. '${u.protocol.slice(0, -1)}' is not allowed.`, 'SyntaxError');
  }
  if (u.hash) {
    throw new DOMEx(`Failed to construct 'WebSocket': The URL contains a fragment identifier ('${u.hash}'). Fragment identifiers are not allowed in WebSocket URLs.`, 'SyntaxError');
  }
  return u;
}
