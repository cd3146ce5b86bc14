// The shell's end of a page WebSocket (page/wsclass.js): a MessagePort the
// worker handed over, bridged to a WebSocket exchange on the tunnel
// (wstunnel.js). The port's messages are the page's, so they are checked
// like any input from the device page: a path of the session's device
// only, subprotocols as tokens, strings or ArrayBuffers as data; anything
// else closes the socket. See page/wsclass.js for the port protocol.

import { openWebSocket, validCloseCode } from './wstunnel.js';
import { TunnelError } from './frames.js';

/**
 * Serves one page WebSocket. m: {target, protocols, cookie} as the worker
 * forwarded it; port: the page's MessagePort; tunnel: the session's;
 * clientOrigin: the device origin the page is on; onOpened(opened), if set, sees
 * the device's answer (cookies to mirror, legacy TLS).
 */
export async function serveWebSocketPort(tunnel, m, port, { clientOrigin = '', onOpened = undefined } = {}) {
  const closeWith = (code, reason, wasClean) => {
    try {
      port.postMessage({ type: 'close', code, reason, wasClean });
    } catch {
      // the page is gone
    }
    // Not at once: a port closed right after postMessage may drop the
    // message in Chromium; the page's side closes its end on this message.
    setTimeout(() => port.close(), 1000);
  };
  const protocols = Array.isArray(m?.protocols) ? m.protocols.filter((p) => typeof p === 'string') : [];
  if (typeof m?.target !== 'string' || protocols.length !== (m.protocols?.length ?? 0)) return closeWith(1006, '', false);
  const header = {};
  if (typeof m.cookie === 'string' && m.cookie) header.Cookie = [m.cookie];
  let ws;
  const early = [];
  port.onmessage = (e) => early.push(e.data); // until the device answers
  port.start?.();
  try {
    ws = await openWebSocket(tunnel, { target: m.target, protocols, header, clientOrigin }, {
      message: (binary, data) => {
        if (!binary) return port.postMessage({ type: 'message', data });
        const buf = data.buffer.byteLength === data.byteLength ? data.buffer : data.slice().buffer;
        port.postMessage({ type: 'message', data: buf }, [buf]);
      },
      close: (code, reason, wasClean) => closeWith(code, reason, wasClean),
    });
  } catch (err) {
    console.warn('porthole: WebSocket refused:', err instanceof TunnelError ? err.message : err);
    return closeWith(1006, '', false);
  }
  onOpened?.(ws.opened);
  // The cookies the device set (not HttpOnly) or deleted on the way: the
  // page's shim mirrors them in its own store, which this side cannot reach.
  const cookies = Array.isArray(ws.opened.cookies) ? ws.opened.cookies : [];
  const deletedCookies = Array.isArray(ws.opened.deletedCookies) ? ws.opened.deletedCookies : [];
  port.postMessage({ type: 'open', protocol: ws.opened.protocol, cookies, deletedCookies });
  const onPage = (d) => {
    if (!d || typeof d !== 'object') return;
    if (d.type === 'send') {
      const data = d.data;
      if (typeof data !== 'string' && !(data instanceof ArrayBuffer)) return ws.close(1003, '');
      const bytes = typeof data === 'string' ? data : new Uint8Array(data);
      const size = typeof data === 'string' ? new TextEncoder().encode(data).byteLength : data.byteLength;
      ws.send(bytes).then(() => port.postMessage({ type: 'sent', n: size }), () => closeWith(1006, '', false));
    } else if (d.type === 'close') {
      const code = validCloseCode(d.code) ? d.code : 0;
      const reason = code && typeof d.reason === 'string' ? d.reason.slice(0, 123) : '';
      ws.close(code, reason);
    }
  };
  port.onmessage = (e) => onPage(e.data);
  for (const d of early) onPage(d);
}
