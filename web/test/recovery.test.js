import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Recovery, RECOVERY, RECONNECTING, reconnectingText, restoredText, giveUpText } from '../session/recovery.js';

/** A manual clock: timers fire only when advance() passes them. */
function fakeClock() {
  let now = 1000;
  let seq = 0;
  const timers = new Map();
  return {
    now: () => now,
    setTimeout(fn, ms) {
      const id = ++seq;
      timers.set(id, { at: now + ms, fn });
      return id;
    },
    clearTimeout(id) {
      timers.delete(id);
    },
    advance(ms) {
      const end = now + ms;
      for (;;) {
        let next = null;
        for (const [id, t] of timers) if (t.at <= end && (!next || t.at < next[1].at)) next = [id, t];
        if (!next) break;
        timers.delete(next[0]);
        now = next[1].at;
        next[1].fn();
      }
      now = end;
    },
    pending: () => timers.size,
  };
}

function setup() {
  const clock = fakeClock();
  const log = { restarts: [], notices: [], gaveUp: [] };
  const r = new Recovery({
    clock,
    restart: (n) => log.restarts.push([n, clock.now()]),
    notice: (text, level) => log.notices.push([text, level]),
    giveUp: (msg) => log.gaveUp.push([msg, clock.now()]),
  });
  return { clock, log, r };
}

test('nothing before the first connection', () => {
  const { clock, log, r } = setup();
  r.update('checking');
  r.update('disconnected');
  r.update('failed');
  clock.advance(120_000);
  assert.deepEqual(log, { restarts: [], notices: [], gaveUp: [] });
  assert.equal(r.recovering, false);
});

test('disconnected restarts after the grace, and retries every 4 s', () => {
  const { clock, log, r } = setup();
  r.update('connected');
  r.update('disconnected');
  assert.equal(r.recovering, true);
  assert.deepEqual(log.notices[0], [RECONNECTING, 'warning']);
  clock.advance(RECOVERY.grace - 1);
  assert.equal(log.restarts.length, 0, 'no restart within the grace');
  clock.advance(1);
  assert.deepEqual(log.restarts, [[1, 1000 + RECOVERY.grace]]);
  clock.advance(RECOVERY.retry);
  clock.advance(RECOVERY.retry);
  assert.deepEqual(log.restarts.map((x) => x[0]), [1, 2, 3]);
  assert.equal(log.restarts[2][1] - log.restarts[1][1], RECOVERY.retry);
  assert.equal(log.notices.at(-1)[0], reconnectingText(3));
});

test('a hiccup shorter than the grace restarts nothing', () => {
  const { clock, log, r } = setup();
  r.update('connected');
  r.update('disconnected');
  clock.advance(RECOVERY.grace / 2);
  r.update('connected');
  clock.advance(RECOVERY.giveUp * 2);
  assert.equal(log.restarts.length, 0);
  assert.equal(log.gaveUp.length, 0);
  assert.deepEqual(log.notices.at(-1), ['', 'info']);
  assert.equal(clock.pending(), 0);
});

test('failed restarts at once, once', () => {
  const { clock, log, r } = setup();
  r.update('connected');
  r.update('disconnected');
  clock.advance(100);
  r.update('failed');
  assert.equal(log.restarts.length, 1);
  r.update('failed');
  r.update('checking');
  assert.equal(log.restarts.length, 1);
  clock.advance(RECOVERY.grace);
  assert.equal(log.restarts.length, 1, 'the grace timer was replaced by the retry timer');
  clock.advance(RECOVERY.retry - RECOVERY.grace);
  assert.equal(log.restarts.length, 2);
});

test('restored: notice with the time and the count, timers gone, a later break starts over', () => {
  const { clock, log, r } = setup();
  r.update('connected');
  r.update('disconnected');
  clock.advance(RECOVERY.grace + RECOVERY.retry + 500);
  assert.equal(log.restarts.length, 2);
  r.update('connected');
  assert.equal(r.recovering, false);
  assert.deepEqual(log.notices.at(-1), [restoredText(RECOVERY.grace + RECOVERY.retry + 500, 2), 'info']);
  assert.equal(clock.pending(), 0);
  r.update('disconnected');
  clock.advance(RECOVERY.grace);
  assert.deepEqual(log.restarts.at(-1)[0], 1, 'attempts count per break');
  assert.equal(r.total, 3);
});

test('gives up once, giveUp after the break, and then stays quiet', () => {
  const { clock, log, r } = setup();
  r.update('connected');
  r.update('disconnected');
  clock.advance(RECOVERY.giveUp - 1);
  assert.equal(log.gaveUp.length, 0);
  const n = log.restarts.length;
  assert.equal(n, 1 + Math.floor((RECOVERY.giveUp - 1 - RECOVERY.grace) / RECOVERY.retry));
  clock.advance(1);
  assert.deepEqual(log.gaveUp, [[giveUpText(RECOVERY, n), 1000 + RECOVERY.giveUp]]);
  clock.advance(RECOVERY.giveUp);
  r.update('disconnected');
  r.update('connected');
  assert.equal(log.gaveUp.length, 1);
  assert.equal(log.restarts.length, n);
  assert.equal(clock.pending(), 0);
});

test('closed and stop end everything; a throwing or rejecting restart keeps the retries going', () => {
  const { clock, log, r } = setup();
  r.update('connected');
  r.update('failed');
  r.update('closed');
  clock.advance(RECOVERY.giveUp * 2);
  assert.equal(log.restarts.length, 1);
  assert.equal(log.gaveUp.length, 0);

  const c2 = fakeClock();
  let calls = 0;
  const warn = console.warn;
  console.warn = () => {};
  try {
    const r2 = new Recovery({
      clock: c2,
      restart: (n) => {
        calls++;
        if (n === 1) throw new Error('boom');
        return Promise.reject(new Error('later'));
      },
      giveUp: () => {},
    });
    r2.update('connected');
    r2.update('failed');
    c2.advance(RECOVERY.retry);
    assert.equal(calls, 2);
  } finally {
    console.warn = warn;
  }
});

test('texts', () => {
  assert.equal(reconnectingText(1), 'Connection to the agent interrupted; reconnecting…');
  assert.equal(reconnectingText(2), 'Connection to the agent interrupted; reconnecting… (attempt 2)');
  assert.equal(restoredText(4_300, 1), 'Connection to the agent restored after 4.3 s (1 ICE restart).');
  assert.equal(restoredText(12_600, 3), 'Connection to the agent restored after 13 s (3 ICE restarts).');
  assert.equal(giveUpText(RECOVERY, 15), 'The connection to the agent broke and 15 ICE restarts in 60 s did not restore it.');
});
