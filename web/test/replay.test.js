import { test } from 'node:test';
import assert from 'node:assert/strict';
import { keepBody, REPLAY_LIMIT } from '../session/replay.js';

const stream = (chunks) => new ReadableStream({
  start(c) {
    for (const x of chunks) c.enqueue(x);
    c.close();
  },
});
const text = async (s) => new TextDecoder().decode(await new Response(s).arrayBuffer());

test('a body within the limit is kept and given again', async () => {
  const enc = new TextEncoder();
  const k = await keepBody(stream([enc.encode('dept='), enc.encode('Sales')]));
  assert.equal(k.replayable, true);
  assert.equal(await text(k.fresh()), 'dept=Sales');
  assert.equal(await text(k.fresh()), 'dept=Sales');
  assert.equal(REPLAY_LIMIT, 1 << 20);
});

test('a larger body streams once, whole, and is not replayable', async () => {
  const big = new Uint8Array(600 << 10).fill(97);
  const k = await keepBody(stream([big, big, new Uint8Array([98])]));
  assert.equal(k.replayable, false);
  const all = new Uint8Array(await new Response(k.fresh()).arrayBuffer());
  assert.equal(all.byteLength, 2 * big.byteLength + 1);
  assert.equal(all.at(-1), 98);
  assert.equal(k.fresh(), null);
});
