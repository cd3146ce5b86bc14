// A service worker cannot carry WebSockets: until Porthole carries them
// (issue 13), a page that opens one is told about in the toolbar rather
// than failing silently. The server answers the upgrade with 501.
feature('websocket', (shim) => {
  const Native = window.WebSocket;
  if (typeof Native !== 'function') return;
  const Wrapped = function WebSocket(...args) {
    shim.hint('websocket', {});
    return new Native(...args);
  };
  Wrapped.prototype = Native.prototype;
  Object.assign(Wrapped, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  window.WebSocket = Wrapped;
});
