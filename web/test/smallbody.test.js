import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collectable, collectSmall, SMALL_BODY } from '../session/smallbody.js';

/** A stream the test feeds by hand: push(bytes), end(), fail(err). */
function manual() {
  let c;
  let cancelled = null;
  const stream = new ReadableStream({
    start(ctl) {
      c = ctl;
    },
    cancel(reason) {
      cancelled = reason ?? 'cancelled';
    },
  });
  return { stream, push: (b) => c.enqueue(new Uint8Array(b)), end: () => c.close(), fail: (e) => c.error(e), cancelled: () => cancelled };
}

async function all(stream) {
  const out = [];
  for await (const chunk of stream) out.push(...chunk);
  return out;
}

test('collectable: not a streaming type, not declared over the limit', () => {
  const cases = [
    [{}, true],
    [{ 'Content-Type': ['text/css'] }, true],
    [{ 'Content-Type': ['Text/Event-Stream; charset=utf-8'] }, false],
    [{ 'Content-Type': ['multipart/x-mixed-replace; boundary=x'] }, false],
    [{ 'Content-Length': ['100'] }, true],
    [{ 'Content-Length': [String(SMALL_BODY)] }, true],
    [{ 'Content-Length': [String(SMALL_BODY + 1)] }, false],
    [undefined, true],
  ];
  for (const [header, want] of cases) assert.equal(collectable(header), want, JSON.stringify(header));
});

test('a body that ends within the limit comes whole, as an ArrayBuffer of its own', async () => {
  const m = manual();
  m.push([1, 2]);
  m.push([3]);
  m.end();
  const r = await collectSmall(m.stream);
  assert.ok(r.bytes instanceof ArrayBuffer);
  assert.deepEqual([...new Uint8Array(r.bytes)], [1, 2, 3]);
  assert.equal(r.stream, undefined);
});

test('a body over the limit carries on as a stream with nothing lost', async () => {
  const m = manual();
  m.push([1, 2, 3]);
  m.push([4, 5]);
  const r = await collectSmall(m.stream, { limit: 4, wait: 1000 });
  assert.equal(r.bytes, undefined);
  m.push([6]);
  m.end();
  assert.deepEqual(await all(r.stream), [1, 2, 3, 4, 5, 6]);
});

test('a body that does not end within the wait carries on as a stream, the read in flight included', async () => {
  const m = manual();
  m.push([1]);
  const t0 = Date.now();
  const r = await collectSmall(m.stream, { wait: 30 });
  assert.ok(r.stream, 'a stream');
  assert.ok(Date.now() - t0 < 1000, 'within the wait');
  m.push([2]); // answers the read that lost to the timer
  m.push([3]);
  m.end();
  assert.deepEqual(await all(r.stream), [1, 2, 3]);
});

test('cancelling the carried-on stream cancels the source', async () => {
  const m = manual();
  const r = await collectSmall(m.stream, { wait: 10 });
  await r.stream.cancel('page gone');
  assert.equal(m.cancelled(), 'page gone');
});

test('an error of the source before the end errors the carried-on stream', async () => {
  const m = manual();
  m.push([1]);
  m.fail(new Error('channel closed'));
  const r = await collectSmall(m.stream);
  assert.ok(r.stream);
  await assert.rejects(all(r.stream), /channel closed/);
});
