import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// A part of the classic page shim bundle (web.go pageParts), not a module.
const createWebSocketClass = new Function(
  readFileSync(fileURLToPath(new URL('../session/page/wsclass.js', import.meta.url)), 'utf8') + '\nreturn createWebSocketClass;',
)();
import { tick } from './fakepc.js';

// A fake shell at the other end of each socket's MessagePort. Every port is
// closed after the test (an open MessagePort keeps node running).
const allPorts = [];
after(() => {
  for (const p of allPorts) p.close();
});

function env() {
  const shells = [];
  class NativeWS {
    constructor(url) {
      this.native = url;
    }
  }
  const WS = createWebSocketClass({
    location: new URL('https://s1.sessions.example/status/index.html'),
    connect(target, protocols) {
      const { port1, port2 } = new MessageChannel();
      allPorts.push(port1, port2);
      const shell = { target, protocols, got: [], port: port2 };
      port2.onmessage = (e) => shell.got.push(e.data);
      shells.push(shell);
      return port1;
    },
    NativeWebSocket: NativeWS,
    Blob, MessageEvent, DOMException, EventTarget, Event,
  });
  return { WS, shells };
}

// MessagePort delivery takes a turn of node's event loop, sometimes more
// under load: wait for what the test expects, bounded.
async function until(cond, what = 'condition') {
  for (let i = 0; i < 500; i++) {
    if (cond()) return;
    await tick(2);
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('constructor validates like the native one and keeps the URL', () => {
  const { WS, shells } = env();
  assert.throws(() => new WS('ftp://s1.sessions.example/'), { name: 'SyntaxError' });
  assert.throws(() => new WS('/ws#frag'), { name: 'SyntaxError' });
  assert.throws(() => new WS('/ws', ['a b']), { name: 'SyntaxError' });
  assert.throws(() => new WS('/ws', ['chat', 'chat']), { name: 'SyntaxError' });
  const ws = new WS('/ws/status?v=2', 'status.v2');
  assert.equal(ws.url, 'wss://s1.sessions.example/ws/status?v=2');
  assert.equal(ws.readyState, WS.CONNECTING);
  assert.equal(WS.OPEN, 1);
  assert.equal(ws.CLOSED, 3);
  assert.equal(ws.binaryType, 'blob');
  assert.equal(ws.extensions, '');
  assert.deepEqual([shells[0].target, shells[0].protocols], ['/ws/status?v=2', ['status.v2']]);
  // http(s) URLs are WebSocket URLs too, relative ones resolve against the page.
  assert.equal(new WS('https://s1.sessions.example/x').url, 'wss://s1.sessions.example/x');
  assert.equal(new WS('live').url, 'wss://s1.sessions.example/status/live');
  // Another host is the native socket's business (the policy refuses it).
  assert.equal(new WS('ws://192.168.1.20/ws').native, 'ws://192.168.1.20/ws');
  assert.throws(() => ws.send('x'), { name: 'InvalidStateError' });
});

test('open, text and binary both ways, binaryType, bufferedAmount, close', async () => {
  const { WS, shells } = env();
  const ws = new WS('/ws/status', ['status.v2', 'status.v1']);
  const events = [];
  ws.onopen = () => events.push('open');
  ws.addEventListener('message', (e) => events.push(['message', e.data, e.origin]));
  ws.onclose = (e) => events.push(['close', e.code, e.reason, e.wasClean]);
  ws.onerror = () => events.push('error');
  const sh = shells[0];
  sh.port.postMessage({ type: 'open', protocol: 'status.v2' });
  await until(() => ws.readyState === WS.OPEN, 'open');
  assert.equal(ws.readyState, WS.OPEN);
  assert.equal(ws.protocol, 'status.v2');
  ws.send('héllo');
  ws.send(new Uint8Array([1, 2, 3]));
  ws.send(new Blob([new Uint8Array([4, 5])]));
  assert.equal(ws.bufferedAmount, 6 + 3 + 2);
  await until(() => sh.got.length === 3, 'three sends');
  assert.equal(sh.got[0].data, 'héllo');
  assert.deepEqual([...new Uint8Array(sh.got[1].data)], [1, 2, 3]);
  assert.deepEqual([...new Uint8Array(sh.got[2].data)], [4, 5]);
  sh.port.postMessage({ type: 'sent', n: 9 });
  await until(() => ws.bufferedAmount === 2, 'sent ack');
  assert.equal(ws.bufferedAmount, 2);
  sh.port.postMessage({ type: 'message', data: '{"pages":1}' });
  const buf = new Uint8Array([7]).buffer;
  sh.port.postMessage({ type: 'message', data: buf });
  await until(() => events.length === 3, 'two messages');
  assert.ok(events[2][1] instanceof Blob);
  ws.binaryType = 'nonsense';
  assert.equal(ws.binaryType, 'blob');
  ws.binaryType = 'arraybuffer';
  sh.port.postMessage({ type: 'message', data: new Uint8Array([8]).buffer });
  await until(() => events.length === 4, 'third message');
  assert.ok(events[3][1] instanceof ArrayBuffer);
  assert.equal(events[1][1], '{"pages":1}');
  assert.equal(events[1][2], 'wss://s1.sessions.example');
  assert.throws(() => ws.close(1001), { name: 'InvalidAccessError' });
  assert.throws(() => ws.close(1000, 'x'.repeat(124)), { name: 'SyntaxError' });
  ws.close(4000, 'done');
  assert.equal(ws.readyState, WS.CLOSING);
  ws.send('late'); // counted, not sent
  await until(() => sh.got.at(-1)?.type === 'close', 'close sent');
  assert.deepEqual(sh.got.at(-1), { type: 'close', code: 4000, reason: 'done' });
  sh.port.postMessage({ type: 'close', code: 4000, reason: 'done', wasClean: true });
  await until(() => ws.readyState === WS.CLOSED, 'closed');
  assert.equal(ws.readyState, WS.CLOSED);
  assert.deepEqual(events.at(-1), ['close', 4000, 'done', true]);
  assert.ok(!events.includes('error'));
  assert.ok(!sh.got.some((m) => m.data === 'late'));
});

test('a refused or broken socket fires error then close 1006', async () => {
  const { WS, shells } = env();
  const ws = new WS('/ws/nothing');
  const events = [];
  ws.onerror = () => events.push('error');
  ws.onclose = (e) => events.push(e.code, e.wasClean);
  shells[0].port.postMessage({ type: 'close', code: 1006, reason: '', wasClean: false });
  await until(() => events.length === 3, 'close');
  assert.deepEqual(events, ['error', 1006, false]);
  // Without a worker to carry it, the same, asynchronously.
  const none = createWebSocketClass({ location: new URL('https://s1.sessions.example/'), connect: () => null, Blob, MessageEvent, DOMException, EventTarget, Event });
  const ws2 = new none('/ws');
  const ev2 = [];
  ws2.onclose = (e) => ev2.push(e.code);
  assert.deepEqual(ev2, []);
  await until(() => ev2.length === 1, 'close without a worker');
  assert.deepEqual(ev2, [1006]);
});
