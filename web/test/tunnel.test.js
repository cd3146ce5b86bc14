import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tunnel, HIGH_WATER, PREBUFFER, LABEL, BATCH, BULK, MIN_BATCH, BATCH_WAIT, BodySource, priorityOf } from '../session/tunnel.js';
import { FrameType, encodeFrame, encodeJSONFrame, encodeAbort, MAX_CHUNK } from '../session/frames.js';
import { FakePeerConnection, tick } from './fakepc.js';

const enc = new TextEncoder();
const dec = new TextDecoder();
const json = (f) => JSON.parse(dec.decode(f.payload));
const END = encodeFrame(FrameType.End);

function respond(dc, status, body, header = { 'Content-Type': ['text/plain'] }) {
  dc.deliver(encodeJSONFrame(FrameType.Response, { status, header }));
  if (body) dc.deliver(encodeFrame(FrameType.Data, enc.encode(body)));
  dc.deliver(END);
}

const get = (target) => ({ method: 'GET', target, headers: [['Accept', '*/*']], cookie: 'ui_lang=en', body: null });

function bodyStream(chunks) {
  return new ReadableStream({
    start(c) {
      for (const x of chunks) c.enqueue(x);
      c.close();
    },
  });
}

async function readAll(stream) {
  return dec.decode(await new Response(stream).arrayBuffer());
}

test('a GET becomes Request + End, and the response streams back', async () => {
  const pc = new FakePeerConnection();
  const t = new Tunnel(pc);
  const p = t.fetch(get('/status?x=1'));
  await tick();
  const [dc] = pc.channels;
  assert.equal(dc.label, LABEL);
  assert.deepEqual(dc.options, { ordered: true });
  assert.equal(dc.binaryType, 'arraybuffer');
  assert.deepEqual(dc.sent.map((f) => f.type), [FrameType.Request, FrameType.End]);
  assert.deepEqual(json(dc.sent[0]), { method: 'GET', target: '/status?x=1', contentLength: 0, header: { Accept: ['*/*'], Cookie: ['ui_lang=en'] } });
  dc.deliver(encodeJSONFrame(FrameType.Response, { status: 200, header: { 'content-type': ['text/html'] }, cookies: ['a=b'] }));
  const { head, body } = await p;
  assert.deepEqual(head, { status: 200, header: { 'Content-Type': ['text/html'] }, cookies: ['a=b'] });
  dc.deliver(encodeFrame(FrameType.Data, enc.encode('hello ')));
  dc.deliver(encodeFrame(FrameType.Data, enc.encode('world')));
  dc.deliver(END);
  assert.equal(await readAll(body), 'hello world');
  assert.deepEqual(t.stats(), { channels: 1, idle: 1, waiting: 0 });
});

test('frames that arrive while the reader is behind are handed over joined, at most BATCH bytes a chunk', async () => {
  const pc = new FakePeerConnection();
  const t = new Tunnel(pc);
  const p = t.fetch(get('/firmware.bin'));
  await tick();
  const [dc] = pc.channels;
  dc.deliver(encodeJSONFrame(FrameType.Response, { status: 200, header: {} }));
  const { body } = await p;
  const rd = body.getReader();
  // The reader waits: the first frame is its chunk at once.
  const first = rd.read();
  dc.deliver(encodeFrame(FrameType.Data, new Uint8Array(MAX_CHUNK).fill(1)));
  assert.equal((await first).value.byteLength, MAX_CHUNK);
  // The reader is behind: what arrives meanwhile comes joined, in order.
  const frames = (BATCH / MAX_CHUNK) * 2 + 3;
  for (let i = 0; i < frames; i++) dc.deliver(encodeFrame(FrameType.Data, new Uint8Array(MAX_CHUNK).fill(i & 0xff)));
  dc.deliver(END);
  const sizes = [];
  let at = 0;
  for (;;) {
    const r = await rd.read();
    if (r.done) break;
    sizes.push(r.value.byteLength);
    for (let off = 0; off < r.value.byteLength; off += MAX_CHUNK, at++) assert.equal(r.value[off], at & 0xff, `frame ${at} in order`);
  }
  assert.equal(at, frames);
  // The stream asks for one chunk ahead of the reader: the first frame
  // fills it alone, the rest is joined.
  assert.deepEqual(sizes, [MAX_CHUNK, BATCH, BATCH, 2 * MAX_CHUNK]);
  assert.deepEqual(t.stats(), { channels: 1, idle: 1, waiting: 0 });
});

test('a bulk body (Content-Length over BULK) is handed over in chunks of at least MIN_BATCH bytes while the reader keeps up', async () => {
  const pc = new FakePeerConnection();
  const t = new Tunnel(pc);
  const p = t.fetch(get('/firmware.bin'));
  await tick();
  const [dc] = pc.channels;
  const frames = (MIN_BATCH / MAX_CHUNK) * 3;
  dc.deliver(encodeJSONFrame(FrameType.Response, { status: 200, header: { 'Content-Length': [String(BULK + frames * MAX_CHUNK)] } }));
  const { body } = await p;
  const rd = body.getReader();
  const sizes = [];
  let at = 0;
  // The reader waits before every frame (it keeps up): frames are still
  // joined until MIN_BATCH bytes are there.
  const k = MIN_BATCH / MAX_CHUNK;
  for (let b = 0; b < 3; b++) {
    const r = rd.read();
    for (let j = 0; j < k; j++) dc.deliver(encodeFrame(FrameType.Data, new Uint8Array(MAX_CHUNK).fill((b * k + j) & 0xff)));
    const { value } = await r;
    sizes.push(value.byteLength);
    for (let off = 0; off < value.byteLength; off += MAX_CHUNK, at++) assert.equal(value[off], at & 0xff, `frame ${at} in order`);
  }
  assert.deepEqual(sizes, [MIN_BATCH, MIN_BATCH, MIN_BATCH]);
  dc.deliver(END);
  assert.equal((await rd.read()).done, true);
  assert.deepEqual(t.stats(), { channels: 1, idle: 1, waiting: 0 });
});

test('a bulk body gives what arrived once BATCH_WAIT ms have passed, and its end at once', async () => {
  const src = new BodySource(() => {}, { minBatch: MIN_BATCH, wait: BATCH_WAIT });
  const rd = new ReadableStream(src).getReader();
  const r = rd.read();
  src.push(new Uint8Array(100).fill(7));
  const t0 = performance.now();
  const { value } = await r;
  const waited = performance.now() - t0;
  assert.equal(value.byteLength, 100);
  assert.ok(waited >= BATCH_WAIT - 1 && waited < 1000, `waited ${waited} ms`);
  // Less than MIN_BATCH queued, then the end: handed over without the wait.
  const r2 = rd.read();
  src.push(new Uint8Array(10).fill(8));
  src.close();
  assert.equal((await r2).value.byteLength, 10);
  assert.equal((await rd.read()).done, true);
  assert.equal(src.timer, null);
});

test('a body without a declared size over BULK keeps one chunk per frame for a reader that keeps up', async () => {
  const pc = new FakePeerConnection();
  const t = new Tunnel(pc);
  const p = t.fetch(get('/events'));
  await tick();
  const [dc] = pc.channels;
  dc.deliver(encodeJSONFrame(FrameType.Response, { status: 200, header: { 'Content-Length': [String(BULK)] } }));
  const { body } = await p;
  const rd = body.getReader();
  for (let i = 0; i < 3; i++) {
    const r = rd.read();
    dc.deliver(encodeFrame(FrameType.Data, new Uint8Array(10)));
    assert.equal((await r).value.byteLength, 10);
  }
  dc.deliver(END);
  assert.equal((await rd.read()).done, true);
});

test('prime opens the first channel and a receive-only video section (for the socket buffer only)', async () => {
  const pc = new FakePeerConnection();
  const t = new Tunnel(pc);
  t.prime();
  await tick();
  assert.equal(pc.channels.length, 1);
  assert.deepEqual(pc.transceivers, [{ kind: 'video', direction: 'recvonly' }]);
  assert.deepEqual(t.stats(), { channels: 1, idle: 1, waiting: 0 });
});

test('sequential requests reuse one channel', async () => {
  const pc = new FakePeerConnection();
  const t = new Tunnel(pc);
  for (let i = 0; i < 50; i++) {
    const p = t.fetch(get(`/n/${i}`));
    await tick();
    respond(pc.channels[0], 200, `r${i}`);
    const { body } = await p;
    assert.equal(await readAll(body), `r${i}`);
  }
  assert.equal(pc.channels.length, 1);
  assert.equal(pc.channels[0].sent.length, 100);
});

test('concurrency is capped and further requests queue', async () => {
  const pc = new FakePeerConnection();
  const t = new Tunnel(pc, { maxChannels: 3 });
  const ps = [];
  for (let i = 0; i < 5; i++) ps.push(t.fetch(get(`/q/${i}`)));
  await tick();
  assert.equal(pc.channels.length, 3);
  assert.deepEqual(t.stats(), { channels: 3, idle: 0, waiting: 2 });
  // Finishing one exchange hands its channel to the next request.
  respond(pc.channels[1], 200, 'one');
  await readAll((await ps[1]).body);
  await tick();
  assert.equal(json(pc.channels[1].sent[2]).target, '/q/3');
  for (const dc of pc.channels) respond(dc, 200, 'x');
  await tick();
  respond(pc.channels[0], 200, 'x');
  const results = await Promise.all(ps);
  assert.equal(results.length, 5);
  assert.equal(pc.channels.length, 3);
});

test('priorityOf orders documents, styles and fonts, then scripts and fetch(), then images', () => {
  const cases = [['document', 0], ['iframe', 0], ['style', 0], ['font', 0], ['script', 1], ['', 1], ['worker', 1], [undefined, 1],
    ['image', 2], ['video', 2], ['audio', 2], ['object', 2]];
  for (const [dest, want] of cases) assert.equal(priorityOf(dest), want, String(dest));
});

test('a free channel goes to the most urgent waiting request, first come first served within a class', async () => {
  const pc = new FakePeerConnection();
  const t = new Tunnel(pc, { maxChannels: 1 });
  const first = t.fetch(get('/busy'));
  await tick();
  const order = [];
  const ps = [['/img/1', 2], ['/fetch/1', 1], ['/img/2', 2], ['/css/1', 0], ['/fetch/2', 1], ['/odd', 'x']].map(([target, priority]) => {
    const p = t.fetch({ ...get(target), priority });
    return p.then(async ({ body }) => {
      order.push(target);
      await readAll(body);
    });
  });
  await tick();
  assert.deepEqual(t.stats(), { channels: 1, idle: 0, waiting: 6 });
  respond(pc.channels[0], 200, 'x');
  await readAll((await first).body);
  for (let i = 0; i < 6; i++) {
    await tick();
    respond(pc.channels[0], 200, 'x');
    await ps[[3, 1, 4, 5, 0, 2][i]];
  }
  // An unknown priority counts as a script's.
  assert.deepEqual(order, ['/css/1', '/fetch/1', '/fetch/2', '/odd', '/img/1', '/img/2']);
});

test('a refusal in place of the head rejects with its code, and the channel is reused', async () => {
  const pc = new FakePeerConnection();
  const t = new Tunnel(pc);
  const p = t.fetch(get('/forbidden'));
  await tick();
  const [dc] = pc.channels;
  dc.deliver(encodeAbort('port_not_allowed', 'port 23 is not declared'));
  await assert.rejects(p, (e) => e.code === 'port_not_allowed' && e.detail === 'port 23 is not declared');
  // Our direction had ended with End already, so nothing more is sent.
  assert.deepEqual(dc.sent.map((f) => f.type), [FrameType.Request, FrameType.End]);
  assert.deepEqual(t.stats(), { channels: 1, idle: 1, waiting: 0 });
});

test('an abort mid-body errors the stream', async () => {
  const pc = new FakePeerConnection();
  const t = new Tunnel(pc);
  const p = t.fetch(get('/slow'));
  await tick();
  const [dc] = pc.channels;
  dc.deliver(encodeJSONFrame(FrameType.Response, { status: 200 }));
  const { body } = await p;
  dc.deliver(encodeFrame(FrameType.Data, enc.encode('part')));
  dc.deliver(encodeAbort('device_failed', 'connection reset'));
  await assert.rejects(readAll(body), (e) => e.code === 'device_failed');
  assert.equal(t.stats().idle, 1);
});

test('small bodies are sent with their length, in chunks of at most 16 KiB', async () => {
  const pc = new FakePeerConnection();
  const t = new Tunnel(pc);
  const data = new Uint8Array(40_000).map((_, i) => i % 251);
  const p = t.fetch({ method: 'POST', target: '/upload', headers: [['Content-Type', 'application/octet-stream']], cookie: '', body: bodyStream([data.subarray(0, 1000), data.subarray(1000)]) });
  await tick(5);
  const [dc] = pc.channels;
  const types = dc.sent.map((f) => f.type);
  assert.equal(types[0], FrameType.Request);
  assert.equal(json(dc.sent[0]).contentLength, 40_000);
  assert.equal(types.at(-1), FrameType.End);
  const chunks = dc.sent.filter((f) => f.type === FrameType.Data);
  assert.ok(chunks.every((f) => f.payload.byteLength <= MAX_CHUNK));
  assert.deepEqual(Buffer.concat(chunks.map((f) => f.payload)), Buffer.from(data));
  respond(dc, 200, 'ok');
  await p;
});

test('large bodies stream with unknown length and stop at the high-water mark', async () => {
  const pc = new FakePeerConnection();
  const t = new Tunnel(pc);
  let pulled = 0;
  const total = PREBUFFER + 4 * HIGH_WATER;
  const body = new ReadableStream({
    pull(c) {
      if (pulled >= total) return c.close();
      const n = Math.min(64 << 10, total - pulled);
      pulled += n;
      c.enqueue(new Uint8Array(n));
    },
  }, { highWaterMark: 0 });
  const p = t.fetch({ method: 'PUT', target: '/firmware', headers: [], cookie: '', body });
  await tick(20);
  const [dc] = pc.channels;
  assert.equal(json(dc.sent[0]).contentLength, -1);
  // The channel holds a bit over HIGH_WATER and the source is not read on.
  assert.ok(dc.bufferedAmount > HIGH_WATER && dc.bufferedAmount < HIGH_WATER + 2 * MAX_CHUNK + 64, `buffered ${dc.bufferedAmount}`);
  const pulledAtStop = pulled;
  await tick(20);
  assert.equal(pulled, pulledAtStop, 'source read while above the high-water mark');
  // Drain until done.
  while (dc.sent.at(-1).type !== FrameType.End) {
    dc.drain();
    await tick(1);
  }
  const sentBytes = dc.sent.filter((f) => f.type === FrameType.Data).reduce((n, f) => n + f.payload.byteLength, 0);
  assert.equal(sentBytes, total);
  respond(dc, 201, '');
  assert.equal((await p).head.status, 201);
});

test('cancelling while the request is open sends Abort and keeps the channel', async () => {
  const pc = new FakePeerConnection();
  const t = new Tunnel(pc);
  const ac = new AbortController();
  // A body that never ends: the request direction stays open.
  const body = new ReadableStream({ start(c) { c.enqueue(new Uint8Array(10)); } });
  const p = t.fetch({ method: 'POST', target: '/hang', headers: [], cookie: '', body, signal: ac.signal });
  await tick(5);
  const [dc] = pc.channels;
  ac.abort();
  await assert.rejects(p, (e) => e.code === 'canceled');
  await tick();
  assert.equal(dc.sent.at(-1).type, FrameType.Abort);
  assert.equal(json(dc.sent.at(-1)).code, 'canceled');
  // The agent ends its direction in turn; the channel is idle again.
  dc.deliver(encodeAbort('canceled'));
  assert.equal(dc.readyState, 'open');
  assert.deepEqual(t.stats(), { channels: 1, idle: 1, waiting: 0 });
});

test('cancelling a response after our End sends one Abort and keeps the channel', async () => {
  const pc = new FakePeerConnection();
  const t = new Tunnel(pc);
  const p = t.fetch(get('/big'));
  await tick();
  const [dc] = pc.channels;
  dc.deliver(encodeJSONFrame(FrameType.Response, { status: 200 }));
  const { body } = await p;
  dc.deliver(encodeFrame(FrameType.Data, enc.encode('x')));
  await body.cancel();
  assert.deepEqual(dc.sent.map((f) => f.type), [FrameType.Request, FrameType.End, FrameType.Abort]);
  assert.equal(json(dc.sent[2]).code, 'canceled');
  // Data already in flight is dropped; the agent's Abort ends the exchange.
  dc.deliver(encodeFrame(FrameType.Data, enc.encode('late')));
  dc.deliver(encodeAbort('canceled'));
  assert.equal(dc.readyState, 'open');
  assert.deepEqual(t.stats(), { channels: 1, idle: 1, waiting: 0 });
  const p2 = t.fetch(get('/next'));
  await tick();
  assert.equal(pc.channels.length, 1);
  respond(dc, 204);
  assert.equal((await p2).body, null);
});

test('protocol violations close the channel', async () => {
  const pc = new FakePeerConnection();
  const t = new Tunnel(pc);
  const p = t.fetch(get('/'));
  await tick();
  const [dc] = pc.channels;
  dc.deliver(encodeFrame(FrameType.Data, enc.encode('no head first')));
  await assert.rejects(p, (e) => e.code === 'bad_message');
  assert.equal(dc.readyState, 'closed');
  // A frame on an idle channel closes it too.
  const p2 = t.fetch(get('/'));
  await tick();
  respond(pc.channels[1], 200, 'ok');
  await p2;
  pc.channels[1].deliver(END);
  assert.equal(pc.channels[1].readyState, 'closed');
});

test('HEAD and null-body statuses give no stream', async () => {
  const pc = new FakePeerConnection();
  const t = new Tunnel(pc);
  const p = t.fetch({ ...get('/'), method: 'HEAD' });
  await tick();
  respond(pc.channels[0], 200, '');
  assert.equal((await p).body, null);
  const p2 = t.fetch(get('/cached'));
  await tick();
  respond(pc.channels[0], 304);
  assert.equal((await p2).body, null);
  assert.equal(t.stats().idle, 1);
});

test('close fails waiting and running requests', async () => {
  const pc = new FakePeerConnection();
  const t = new Tunnel(pc, { maxChannels: 1 });
  const a = t.fetch(get('/a'));
  const b = t.fetch(get('/b'));
  await tick();
  t.close();
  await assert.rejects(a, (e) => e.code === 'session_ended');
  await assert.rejects(b, (e) => e.code === 'session_ended');
  await assert.rejects(t.fetch(get('/c')), (e) => e.code === 'session_ended');
  assert.equal(pc.channels[0].readyState, 'closed');
});
