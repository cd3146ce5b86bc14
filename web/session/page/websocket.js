// The device page's WebSockets, carried by the session (issue 13): a
// service worker cannot intercept them, so the page's WebSocket becomes the
// shim's (wsclass.js), whose MessagePort the controlling worker hands on to
// the session window. A page no worker controls (a hard reload) has
// nothing to carry its socket: it fails as a refused connection does, and
// the toolbar says why. The server answers an upgrade with 501 either way.
feature('websocket', (shim) => {
  const Native = window.WebSocket;
  if (typeof Native !== 'function' || typeof MessageChannel !== 'function') return;
  const connect = (target, protocols) => {
    const sw = navigator.serviceWorker && navigator.serviceWorker.controller;
    if (!sw) {
      shim.hint('websocket', { reason: 'uncontrolled' });
      return null;
    }
    const { port1, port2 } = new MessageChannel();
    sw.postMessage({ type: 'porthole.ws', target, protocols }, [port2]);
    return port1;
  };
  const onCookies = (set, deleted) => {
    for (const c of set) {
      if (typeof c === 'string' && c.indexOf(';') < 0) document.cookie = c + '; path=/';
    }
    for (const n of deleted) {
      if (typeof n === 'string' && /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(n)) document.cookie = n + '=; path=/; max-age=0';
    }
  };
  const WS = createWebSocketClass({
    location, connect, onCookies, NativeWebSocket: Native, Blob, MessageEvent,
    CloseEvent: window.CloseEvent, DOMException, EventTarget, Event,
  });
  window.WebSocket = /** @type {typeof WebSocket} */ (/** @type {unknown} */ (WS)); // its statics are defined in wsclass.js
});
