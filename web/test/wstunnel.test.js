import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tunnel, HIGH_WATER } from '../session/tunnel.js';
import { FrameType, encodeFrame, encodeJSONFrame, encodeAbort, MAX_CHUNK } from '../session/frames.js';
import { openWebSocket, encodeWSOpen, decodeWSClose, wsMessageFrames, validCloseCode, WS_BINARY, WS_FINAL, MAX_WS_MESSAGE } from '../session/wstunnel.js';
import { FakePeerConnection, tick } from './fakepc.js';
import { golden } from './golden.js';

const enc = new TextEncoder();
const dec = new TextDecoder();
const json = (f) => JSON.parse(dec.decode(f.payload));

function sink() {
  const s = { messages: [], closed: null };
  s.message = (binary, data) => s.messages.push({ binary, data });
  s.close = (code, reason, wasClean) => {
    s.closed = { code, reason, wasClean };
  };
  return s;
}

function agentMessage(binary, final, bytes) {
  const p = new Uint8Array(1 + bytes.byteLength);
  p[0] = (binary ? WS_BINARY : 0) | (final ? WS_FINAL : 0);
  p.set(bytes, 1);
  return encodeFrame(FrameType.WSMessage, p);
}

async function opened(t, pc, open = { target: '/ws/status', protocols: ['status.v2', 'status.v1'] }) {
  const s = sink();
  const p = openWebSocket(t, open, s);
  await tick();
  const dc = pc.channels[0];
  dc.deliver(encodeJSONFrame(FrameType.WSOpened, { protocol: 'status.v2' }));
  return { ws: await p, dc, s };
}

test('the open frame is the golden one', () => {
  const f = encodeWSOpen({ target: '/ws/status?v=2', protocols: ['status.v2', 'status.v1'], header: { Cookie: ['ui_lang=en'] }, clientOrigin: 'https://s1.sessions.example' });
  assert.equal(dec.decode(f.subarray(1)), golden('tunnel/ws-open'));
  for (const bad of [{ target: 'ws://evil/' }, { target: '//evil/x' }, { target: '/x', protocols: ['a b'] }, { target: '/x', protocols: ['a', 'a'] }, { target: '/x#f' }]) {
    assert.throws(() => encodeWSOpen(bad), /bad_request/, JSON.stringify(bad));
  }
});

test('close frames and codes follow proto', () => {
  assert.deepEqual(decodeWSClose(enc.encode(golden('tunnel/ws-close'))), { code: 4001, reason: 'device says bye' });
  assert.deepEqual(decodeWSClose(new Uint8Array()), { code: 1005, reason: '' });
  assert.throws(() => decodeWSClose(enc.encode('{"code":1006}')), /bad_message/);
  assert.ok(validCloseCode(1000) && validCloseCode(4999) && !validCloseCode(1005) && !validCloseCode(2999));
});

test('messages are chunked at 16 KiB with boundaries', () => {
  const frames = [...wsMessageFrames(true, new Uint8Array(MAX_CHUNK * 2 + 5))];
  assert.equal(frames.length, 3);
  assert.deepEqual(frames.map((f) => f[1]), [WS_BINARY, WS_BINARY, WS_BINARY | WS_FINAL]);
  assert.equal(frames[0].byteLength, 2 + MAX_CHUNK);
  const empty = [...wsMessageFrames(false, new Uint8Array())];
  assert.equal(empty.length, 1);
  assert.equal(empty[0][1], WS_FINAL);
});

test('open, messages both ways, the device closes, the channel is reused', async () => {
  const pc = new FakePeerConnection();
  const t = new Tunnel(pc);
  const { ws, dc, s } = await opened(t, pc);
  assert.equal(ws.opened.protocol, 'status.v2');
  assert.deepEqual(json(dc.sent[0]), { target: '/ws/status', protocols: ['status.v2', 'status.v1'] });
  assert.equal(await ws.send('hello'), 5);
  await ws.send(new Uint8Array([1, 2, 3]));
  assert.deepEqual(dc.sent.slice(1).map((f) => [...f.payload]), [[WS_FINAL, ...enc.encode('hello')], [WS_BINARY | WS_FINAL, 1, 2, 3]]);
  // A text message in two chunks, then a binary one.
  dc.deliver(agentMessage(false, false, enc.encode('{"pages":')));
  dc.deliver(agentMessage(false, true, enc.encode('12}')));
  dc.deliver(agentMessage(true, true, new Uint8Array([9])));
  assert.deepEqual(s.messages, [{ binary: false, data: '{"pages":12}' }, { binary: true, data: new Uint8Array([9]) }]);
  dc.deliver(encodeJSONFrame(FrameType.WSClose, { code: 4001, reason: 'bye' }));
  assert.deepEqual(s.closed, { code: 4001, reason: 'bye', wasClean: true });
  // We answered the close, and the channel went back to the pool.
  const last = dc.sent.at(-1);
  assert.equal(last.type, FrameType.WSClose);
  assert.deepEqual(json(last), { code: 4001, reason: 'bye' });
  assert.deepEqual(t.stats(), { channels: 1, idle: 1, waiting: 0 });
});

test('the page closes: our close, then the device answer ends it', async () => {
  const pc = new FakePeerConnection();
  const t = new Tunnel(pc);
  const { ws, dc, s } = await opened(t, pc);
  ws.close(1000, 'done');
  await tick();
  assert.deepEqual(json(dc.sent.at(-1)), { code: 1000, reason: 'done' });
  assert.equal(t.stats().idle, 0);
  dc.deliver(encodeJSONFrame(FrameType.WSClose, { code: 1000, reason: 'done' }));
  assert.deepEqual(s.closed, { code: 1000, reason: 'done', wasClean: true });
  assert.equal(t.stats().idle, 1);
});

test('a refusal rejects with its code and keeps the channel', async () => {
  const pc = new FakePeerConnection();
  const t = new Tunnel(pc);
  const p = openWebSocket(t, { target: '/ws', port: 25 }, sink());
  await tick();
  const dc = pc.channels[0];
  dc.deliver(encodeAbort('port_not_allowed', 'port 25 is not declared'));
  await assert.rejects(p, /port_not_allowed/);
  assert.equal(dc.sent.at(-1).type, FrameType.Abort);
  assert.equal(t.stats().idle, 1);
});

test('a broken connection is 1006, not clean', async () => {
  const pc = new FakePeerConnection();
  const t = new Tunnel(pc);
  const { dc, s } = await opened(t, pc);
  dc.deliver(encodeAbort('device_failed', 'reset'));
  assert.deepEqual(s.closed, { code: 1006, reason: '', wasClean: false });
  assert.equal(t.stats().idle, 1);
});

test('invalid UTF-8 fails the connection, an oversize message too', async () => {
  let pc = new FakePeerConnection();
  let t = new Tunnel(pc);
  let r = await opened(t, pc);
  r.dc.deliver(agentMessage(false, true, new Uint8Array([0xff, 0xfe])));
  assert.equal(r.s.closed.code, 1006);
  assert.deepEqual(json(r.dc.sent.at(-1)), { code: 1007, reason: 'invalid UTF-8' });
  assert.equal(r.s.messages.length, 0);

  pc = new FakePeerConnection();
  t = new Tunnel(pc);
  r = await opened(t, pc);
  const chunk = new Uint8Array(MAX_CHUNK);
  for (let n = 0; n <= MAX_WS_MESSAGE / MAX_CHUNK; n++) r.dc.deliver(agentMessage(true, false, chunk));
  assert.equal(r.s.closed.code, 1009);
  assert.equal(r.dc.readyState, 'closed');
});

test('sending waits at the high-water mark', async () => {
  const pc = new FakePeerConnection();
  const t = new Tunnel(pc);
  const { ws, dc } = await opened(t, pc);
  let done = false;
  ws.send(new Uint8Array(HIGH_WATER + 4 * MAX_CHUNK)).then(() => {
    done = true;
  });
  await tick();
  assert.equal(done, false);
  const sentBefore = dc.sent.length;
  dc.drain();
  await tick();
  assert.ok(dc.sent.length > sentBefore);
  for (let i = 0; i < 10 && !done; i++) {
    dc.drain();
    await tick();
  }
  assert.equal(done, true);
});
