import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatWindows, parseList, parsePorts, parseWindows, windowText } from '../app/policytext.js';

test('time windows read from lines and back', () => {
  const w = parseWindows('mon tue wed thu fri 08:00-18:00\n\n sat, sun 09:00 – 12:00 ');
  assert.deepEqual(w, [
    { days: ['mon', 'tue', 'wed', 'thu', 'fri'], from: '08:00', to: '18:00' },
    { days: ['sat', 'sun'], from: '09:00', to: '12:00' },
  ]);
  assert.equal(formatWindows(w), 'mon tue wed thu fri 08:00-18:00\nsat sun 09:00-12:00');
  assert.deepEqual(parseWindows(''), []);
  for (const bad of ['monday 08:00-18:00', 'mon 8:00-18:00', '08:00-18:00', 'mon 08:00']) assert.throws(() => parseWindows(bad), /line 1/);
});

test('path rules and ports', () => {
  assert.deepEqual(parseList(' /firmware, /admin ,'), ['/firmware', '/admin']);
  assert.deepEqual(parsePorts('80, 443'), [80, 443]);
  assert.throws(() => parsePorts('80, http'));
  assert.throws(() => parsePorts('70000'));
});

test('the next window reads in the site time zone', () => {
  assert.equal(windowText('2027-01-18T07:00:00Z', 'Europe/Berlin'), 'Mon 18 Jan, 08:00 (Europe/Berlin)');
  assert.equal(windowText('2027-01-18T07:00:00Z', ''), 'Mon 18 Jan, 07:00 (UTC)');
});
