import { test } from 'node:test';
import assert from 'node:assert/strict';
import { turnHost, relayHosts, relayOf, iceServersOf, relayLostText } from '../session/relayswitch.js';

const servers = [
  { urls: ['turn:203.0.113.30:3478?transport=udp'], username: 'u', credential: 'p' },
  { urls: 'turn:203.0.113.31:3478?transport=udp', username: 'u', credential: 'p' },
];

function report(local, remote) {
  return [
    { id: 'T', type: 'transport', selectedCandidatePairId: 'P' },
    { id: 'P', type: 'candidate-pair', localCandidateId: 'L', remoteCandidateId: 'R' },
    { id: 'L', ...local },
    { id: 'R', ...remote },
  ];
}

test('turnHost and relayHosts name the relays', () => {
  assert.equal(turnHost('turn:203.0.113.30:3478?transport=udp'), '203.0.113.30:3478');
  assert.equal(turnHost('turns:relay.example:443?transport=tcp'), 'relay.example:443');
  assert.equal(turnHost('turn:relay.example'), 'relay.example:3478');
  assert.equal(turnHost('stun:203.0.113.30:3478'), '');
  assert.equal(turnHost(5), '');
  assert.deepEqual(relayHosts(servers), ['203.0.113.30:3478', '203.0.113.31:3478']);
});

test('relayOf names the relay of the selected pair', () => {
  for (const [name, rep, want] of [
    ['own relay candidate: its url', report({ candidateType: 'relay', address: '203.0.113.30', url: 'turn:203.0.113.30:3478?transport=udp' }, { candidateType: 'prflx', address: '198.51.100.20' }), ['turn:203.0.113.30:3478?transport=udp']],
    ["the agent's relay: matched by address", report({ candidateType: 'host', address: '10.1.0.10' }, { candidateType: 'relay', address: '203.0.113.31' }), ['turn:203.0.113.31:3478?transport=udp']],
    ['an unknown relay: its address', report({ candidateType: 'host', address: '10.1.0.10' }, { candidateType: 'relay', address: '192.0.2.9' }), ['turn:192.0.2.9']],
    ['not relayed', report({ candidateType: 'host', address: '10.1.0.10' }, { candidateType: 'srflx', address: '198.51.100.20' }), null],
    ['no selected pair', [{ id: 'T', type: 'transport' }], null],
  ]) {
    assert.deepEqual(relayOf(rep, servers), want, name);
  }
});

test('iceServersOf refuses malformed ice.servers', () => {
  assert.deepEqual(iceServersOf({ iceServers: servers }).relays, ['203.0.113.30:3478', '203.0.113.31:3478']);
  for (const bad of [null, {}, { iceServers: 'turn:x' }, { iceServers: [{}] }, { iceServers: [{ urls: ['http://x'] }] }, { iceServers: new Array(9).fill(servers[0]) }]) {
    assert.equal(iceServersOf(bad), null, JSON.stringify(bad));
  }
});

test('relayLostText says which relay was lost and which one comes', () => {
  assert.equal(relayLostText(['turn:203.0.113.30:3478?transport=udp'], ['203.0.113.31:3478'], 1), 'Relay lost (203.0.113.30:3478); reconnecting through relay 203.0.113.31:3478…');
  assert.match(relayLostText(['turn:203.0.113.30:3478?transport=udp'], ['203.0.113.31:3478'], 2), /\(attempt 2\)$/);
  assert.equal(relayLostText(['turn:203.0.113.30:3478?transport=udp'], [], 2), 'Relay lost (203.0.113.30:3478); reconnecting… (attempt 2)');
  // No other relay configured: the same one again, not "through" it.
  assert.equal(relayLostText(['turn:203.0.113.30:3478?transport=udp'], ['203.0.113.30:3478'], 1), 'Relay lost (203.0.113.30:3478); reconnecting… (attempt 1)');
});
