import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatRemaining, timerLevel, pathFromStats, pathLabel } from '../session/toolbar.js';

test('remaining time', () => {
  assert.equal(formatRemaining(30 * 60_000), '30:00');
  assert.equal(formatRemaining(65_000), '1:05');
  assert.equal(formatRemaining(500), '0:01');
  assert.equal(formatRemaining(-5), '0:00');
  assert.equal(formatRemaining(3_723_000), '1:02:03');
  assert.equal(timerLevel(6 * 60_000), 'ok');
  assert.equal(timerLevel(5 * 60_000), 'warning');
  assert.equal(timerLevel(60_000), 'critical');
  assert.equal(timerLevel(0), 'critical');
});

function report(localType, remoteType, viaTransport = true) {
  const m = new Map();
  const add = (s) => m.set(s.id, s);
  add({ id: 'L', type: 'local-candidate', candidateType: localType });
  add({ id: 'R', type: 'remote-candidate', candidateType: remoteType });
  add({ id: 'P0', type: 'candidate-pair', localCandidateId: 'R', remoteCandidateId: 'L', state: 'failed' });
  add({ id: 'P', type: 'candidate-pair', localCandidateId: 'L', remoteCandidateId: 'R', state: 'succeeded', nominated: true, currentRoundTripTime: 0.0123 });
  if (viaTransport) add({ id: 'T', type: 'transport', selectedCandidatePairId: 'P' });
  return m;
}

test('path from the selected candidate pair', () => {
  assert.deepEqual(pathFromStats(report('host', 'prflx')), { relay: false, local: 'host', remote: 'prflx', rttMs: 12 });
  assert.deepEqual(pathFromStats(report('relay', 'srflx')), { relay: true, local: 'relay', remote: 'srflx', rttMs: 12 });
  assert.deepEqual(pathFromStats(report('srflx', 'relay', false)), { relay: true, local: 'srflx', remote: 'relay', rttMs: 12 });
  assert.equal(pathFromStats(new Map()), null);
  assert.equal(pathLabel(null), 'connecting…');
  assert.equal(pathLabel({ relay: true, rttMs: 12 }), 'relayed · 12 ms');
  assert.equal(pathLabel({ relay: false, rttMs: null }), 'direct');
});
