import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Tunnel } from '../session/tunnel.js';
import { FrameType, encodeFrame, encodeJSONFrame, encodeAbort } from '../session/frames.js';
import { serveWebSocketPort } from '../session/wsport.js';
import { WS_FINAL } from '../session/wstunnel.js';
import { FakePeerConnection, tick } from './fakepc.js';

const dec = new TextDecoder();
const enc = new TextEncoder();
const ports = [];
after(() => ports.forEach((p) => p.close()));

async function until(cond, what) {
  for (let i = 0; i < 500; i++) {
    if (cond()) return;
    await tick(2);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function page() {
  const { port1, port2 } = new MessageChannel();
  ports.push(port1, port2);
  const got = [];
  port1.onmessage = (e) => got.push(e.data);
  return { page: port1, shell: port2, got };
}

test('a page socket is carried both ways, acknowledged and closed', async () => {
  const pc = new FakePeerConnection();
  const t = new Tunnel(pc);
  const p = page();
  let opened = null;
  serveWebSocketPort(t, { target: '/ws/status', protocols: ['status.v2'], cookie: 'ui_lang=en' }, p.shell, {
    clientOrigin: 'https://s1.sessions.example', onOpened: (o) => { opened = o; },
  });
  await until(() => pc.channels[0]?.sent.length === 1, 'open frame');
  const dc = pc.channels[0];
  assert.deepEqual(JSON.parse(dec.decode(dc.sent[0].payload)), {
    target: '/ws/status', protocols: ['status.v2'], header: { Cookie: ['ui_lang=en'] }, clientOrigin: 'https://s1.sessions.example',
  });
  // The page sends before the device answered: kept, then sent in order.
  p.page.postMessage({ type: 'send', data: 'early' });
  await tick(10);
  dc.deliver(encodeJSONFrame(FrameType.WSOpened, { protocol: 'status.v2', cookies: ['ws_seen=1'] }));
  await until(() => p.got.some((m) => m.type === 'open'), 'open');
  assert.equal(opened.cookies[0], 'ws_seen=1');
  assert.deepEqual(p.got[0], { type: 'open', protocol: 'status.v2', cookies: ['ws_seen=1'], deletedCookies: [] });
  await until(() => dc.sent.length === 2, 'early message');
  assert.equal(dec.decode(dc.sent[1].payload.subarray(1)), 'early');
  p.page.postMessage({ type: 'send', data: new Uint8Array([1, 2]).buffer });
  await until(() => p.got.filter((m) => m.type === 'sent').length === 2, 'acks');
  assert.deepEqual(p.got.filter((m) => m.type === 'sent').map((m) => m.n), [5, 2]);
  const payload = new Uint8Array([WS_FINAL, ...enc.encode('{"pages":3}')]);
  dc.deliver(encodeFrame(FrameType.WSMessage, payload));
  await until(() => p.got.some((m) => m.type === 'message'), 'message');
  assert.equal(p.got.find((m) => m.type === 'message').data, '{"pages":3}');
  p.page.postMessage({ type: 'close', code: 1000, reason: 'bye' });
  await until(() => dc.sent.at(-1).type === FrameType.WSClose, 'close frame');
  dc.deliver(encodeJSONFrame(FrameType.WSClose, { code: 1000, reason: 'bye' }));
  await until(() => p.got.some((m) => m.type === 'close'), 'close');
  assert.deepEqual(p.got.at(-1), { type: 'close', code: 1000, reason: 'bye', wasClean: true });
  assert.equal(t.stats().idle, 1);
});

test('what the page may not send closes the socket or is refused', async () => {
  const pc = new FakePeerConnection();
  const t = new Tunnel(pc);
  // Not a path: refused before anything is sent.
  for (const m of [{ target: 'ws://10.0.0.1/' }, { target: '/x', protocols: [1] }, { target: 7 }]) {
    const p = page();
    await serveWebSocketPort(t, m, p.shell, {});
    await until(() => p.got.length === 1, 'close');
    assert.equal(p.got[0].code, 1006, JSON.stringify(m));
  }
  assert.equal(pc.channels.flatMap((dc) => dc.sent).filter((f) => f.type === FrameType.WSOpen).length, 0);
  // The agent refuses: the page sees 1006.
  const p = page();
  serveWebSocketPort(t, { target: '/ws', protocols: [] }, p.shell, {});
  await until(() => pc.channels.some((dc) => dc.sent.some((f) => f.type === FrameType.WSOpen)), 'open');
  const dc = pc.channels.find((d) => d.sent.some((f) => f.type === FrameType.WSOpen));
  dc.deliver(encodeAbort('port_not_allowed', 'no'));
  await until(() => p.got.length === 1, 'refusal');
  assert.deepEqual(p.got[0], { type: 'close', code: 1006, reason: '', wasClean: false });
});
