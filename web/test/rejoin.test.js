import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rejoin, backoff, firstWait, finalRefusal, MAX_WAIT, MAX_HINT, RESUME_TIMEOUT } from '../session/rejoin.js';

// A fake signaling connection: answers hello with the scripted reply.
function fakeSig(reply, log) {
  const sig = {
    onmessage: () => {},
    onclose: () => {},
    closed: false,
    opened: reply === 'refuse-open' ? Promise.reject(new Error('closed (1006)')) : Promise.resolve(),
    send(type, data) {
      log.push(type + ':' + data.role);
      queueMicrotask(() => {
        if (reply === 'ready') sig.onmessage({ type: 'session.ready', data: {} });
        else if (reply === 'close') sig.onclose(1012);
        else if (reply === 'end') sig.onmessage({ type: 'session.end', data: { reason: 'client' } });
        else if (reply === 'silent') return;
        else sig.onmessage({ type: 'error', data: { code: reply, message: 'no' } });
      });
      return true;
    },
    close() {
      sig.closed = true;
    },
  };
  return sig;
}

// Timers that fire at once, advancing a fake clock by the delay.
function fakeClock() {
  const c = { t: 0, waits: [] };
  c.now = () => c.t;
  c.timers = {
    setTimeout(fn, ms) {
      if (ms >= 10_000) return 0; // the attempt timeout: never, in these tests
      c.waits.push(ms);
      c.t += ms;
      queueMicrotask(fn);
      return 0;
    },
    clearTimeout() {},
  };
  return c;
}

test('backoff doubles from 100 ms up to 1 s; the drain hint is bounded', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 9].map(backoff), [100, 200, 400, 800, MAX_WAIT, MAX_WAIT]);
  const cases = [[null, 0], [{}, 0], [{ retryAfterMs: 250 }, 250], [{ retryAfterMs: 60_000 }, MAX_HINT], [{ retryAfterMs: -5 }, 0], [{ retryAfterMs: 'x' }, 0]];
  for (const [d, want] of cases) assert.equal(firstWait(d), want, JSON.stringify(d));
  assert.ok(finalRefusal('session_in_use') && finalRefusal('unauthorized') && finalRefusal('forbidden'));
  assert.ok(!finalRefusal('unavailable') && !finalRefusal('not_found'));
});

test('rejoin retries closed and unavailable attempts, then resumes on session.ready', async () => {
  const replies = ['refuse-open', 'close', 'unavailable', 'ready'];
  const log = [];
  const c = fakeClock();
  const sigs = [];
  const r = await rejoin({ open: () => { const s = fakeSig(replies[sigs.length], log); sigs.push(s); return s; }, drain: { retryAfterMs: 300 }, now: c.now, timers: c.timers });
  assert.equal(r.sig, sigs[3]);
  assert.equal(r.sig.closed, false);
  assert.ok(sigs.slice(0, 3).every((s) => s.closed), 'failed attempts are closed');
  assert.deepEqual(c.waits, [300, 100, 200, 400]);
  assert.deepEqual(log, ['hello:client', 'hello:client', 'hello:client']);
});

test('rejoin gives up at once when refused for good, and at the deadline otherwise', async () => {
  for (const code of ['session_in_use', 'unauthorized', 'forbidden']) {
    let n = 0;
    const c = fakeClock();
    const r = await rejoin({ open: () => (n++, fakeSig(code, [])), now: c.now, timers: c.timers });
    assert.equal(r.gaveUp, true, code);
    assert.equal(r.error.code, code);
    assert.equal(n, 1, `${code}: one attempt`);
  }
  const c = fakeClock();
  let n = 0;
  const r = await rejoin({ open: () => (n++, fakeSig('close', [])), now: c.now, timers: c.timers });
  assert.equal(r.gaveUp, true);
  assert.ok(c.t <= RESUME_TIMEOUT, `gave up at ${c.t} ms`);
  assert.ok(n > 50 && n < 70, `${n} attempts in a minute`);
});

test('rejoin reports the end signaling gave meanwhile, and stops when told', async () => {
  const c = fakeClock();
  const r = await rejoin({ open: () => fakeSig('end', []), now: c.now, timers: c.timers });
  assert.deepEqual(r.ended, { reason: 'client' });
  let stop = false;
  const c2 = fakeClock();
  const opened = [];
  const r2 = await rejoin({ open: () => { stop = true; const s = fakeSig('ready', []); opened.push(s); return s; }, stopped: () => stop, now: c2.now, timers: c2.timers });
  assert.equal(r2.gaveUp, true);
  assert.ok(opened[0].closed, 'a connection that came too late is closed');
});
