import { test } from 'node:test';
import assert from 'node:assert/strict';
import { explainPath, REASONS } from '../session/pathreason.js';

// cand(id, side, type, address, port, relayProtocol)
function cand(id, side, candidateType, address, port, relayProtocol) {
  const c = { id, type: side === 'local' ? 'local-candidate' : 'remote-candidate', candidateType, address, port, protocol: 'udp' };
  if (relayProtocol) c.relayProtocol = relayProtocol;
  return c;
}

function pair(id, local, remote, state = 'succeeded') {
  return { id, type: 'candidate-pair', localCandidateId: local, remoteCandidateId: remote, state, nominated: state === 'succeeded' };
}

// report builds a Map-shaped report with the pair `selected` chosen.
function report(selected, ...stats) {
  const all = [...stats, { id: 'T', type: 'transport', selectedCandidatePairId: selected }];
  return new Map(all.map((s) => [s.id, s]));
}

const techHost = cand('Lh', 'local', 'host', '10.1.0.10', 50000);
const techSrflx = cand('Ls', 'local', 'srflx', '198.51.100.20', 50000);
const techRelayUDP = cand('Lr', 'local', 'relay', '203.0.113.30', 40000, 'udp');
const agentHost = cand('Rh', 'remote', 'host', '192.168.1.10', 40000);
const agentSrflx = cand('Rs', 'remote', 'srflx', '203.0.113.20', 40000);
const agentRelay = cand('Rr', 'remote', 'relay', '203.0.113.30', 41000);

test('a direct path has no reason', () => {
  const r = report('P', techHost, techSrflx, techRelayUDP, agentHost, agentSrflx, agentRelay, pair('P', 'Ls', 'Rs'));
  assert.deepEqual(explainPath(r), {
    relay: false,
    local: 'srflx',
    remote: 'srflx',
    localTypes: ['host', 'relay', 'srflx'],
    remoteTypes: ['host', 'relay', 'srflx'],
    reason: '',
  });
});

test('no pair selected yet', () => {
  assert.equal(explainPath(new Map()), null);
  assert.equal(explainPath(report('missing', techHost)), null);
  assert.equal(explainPath(null), null);
});

test('UDP blocked at the site: the agent offers no srflx, only a relay over TCP', () => {
  const r = report('P', techHost, techSrflx, techRelayUDP, agentHost, agentRelay, pair('P', 'Ls', 'Rr'), pair('Q', 'Ls', 'Rh', 'failed'));
  const p = explainPath(r);
  assert.equal(p.relay, true);
  assert.equal(p.remote, 'relay');
  assert.equal(p.reason, REASONS.udpBlockedSite);
});

test('UDP blocked on the technician side', () => {
  const tcpRelay = cand('Lt', 'local', 'relay', '203.0.113.30', 40001, 'tcp');
  const p = explainPath(report('P', techHost, tcpRelay, agentHost, agentSrflx, agentRelay, pair('P', 'Lt', 'Rs')));
  assert.equal(p.local, 'relay/tcp');
  assert.equal(p.reason, REASONS.udpBlockedHere);
  const both = explainPath(report('P', techHost, tcpRelay, agentHost, agentRelay, pair('P', 'Lt', 'Rr')));
  assert.equal(both.reason, REASONS.udpBlockedBoth);
});

test('relay-only policy', () => {
  const p = explainPath(report('P', techRelayUDP, agentHost, agentSrflx, agentRelay, pair('P', 'Lr', 'Rs')));
  assert.equal(p.reason, REASONS.policy);
});

test('symmetric NAT evidence: a prflx on a srflx address with another port', () => {
  // The agent's check reached our relay from a port its srflx does not show.
  const agentPrflx = cand('Rp', 'remote', 'prflx', '203.0.113.20', 51234);
  const techPrflx = cand('Lp', 'local', 'prflx', '198.51.100.20', 61234);
  const base = [techHost, techSrflx, techRelayUDP, agentHost, agentSrflx, agentRelay, pair('Q', 'Ls', 'Rs', 'failed')];
  assert.equal(explainPath(report('P', ...base, agentPrflx, techPrflx, pair('P', 'Lr', 'Rp'))).reason, REASONS.symmetricBoth);
  assert.match(explainPath(report('P', ...base, agentPrflx, pair('P', 'Lr', 'Rp'))).reason, /^symmetric NAT at the site/);
  assert.match(explainPath(report('P', ...base, techPrflx, pair('P', 'Lp', 'Rr'))).reason, /^symmetric NAT on your network/);
  // Same port as the srflx: an endpoint-independent mapping, no evidence.
  const eimPrflx = cand('Re', 'remote', 'prflx', '203.0.113.20', 40000);
  const none = explainPath(report('P', ...base, eimPrflx, pair('P', 'Lr', 'Re'))).reason;
  assert.match(none, /symmetric NAT on both sides, or strict firewalls/);
});

test('a direct pair that worked but was not selected', () => {
  const p = explainPath(report('P', techHost, techSrflx, techRelayUDP, agentHost, agentSrflx, agentRelay, pair('P', 'Lr', 'Rs'), pair('Q', 'Ls', 'Rs')));
  assert.equal(p.reason, REASONS.noDirect);
});

test('iterables of stats and of [id, stats] pairs', () => {
  const stats = [techSrflx, agentRelay, pair('P', 'Ls', 'Rr'), { id: 'T', type: 'transport', selectedCandidatePairId: 'P' }];
  assert.equal(explainPath(stats).relay, true);
  assert.equal(explainPath(stats.map((s) => [s.id, s])).remote, 'relay');
});

// The agent's session.path reports (proto.SessionPath) for the rungs of
// the ladder that getStats alone cannot tell apart.
test('the agent says how it reached the relay: TURN/TLS, through the site\'s proxy', () => {
  const r = report('P', techHost, techSrflx, techRelayUDP, agentHost, agentRelay, pair('P', 'Lr', 'Rr'), pair('Q', 'Ls', 'Rh', 'failed'));
  const proxied = explainPath(r, { path: 'relay', local: 'relay', remote: 'relay', relay: 'tls', proxy: '192.168.1.1:3128', site: 'proxy-only' });
  assert.equal(proxied.reason, 'site allows only an HTTP proxy');
  assert.equal(proxied.remote, "relay/tls via the site's HTTP proxy");
  const tls = explainPath(r, { path: 'relay', local: 'relay', remote: 'relay', relay: 'tls', site: 'tls-only' });
  assert.equal(tls.reason, REASONS.tlsOnly);
  assert.equal(tls.remote, 'relay/tls');
  const tcp = explainPath(r, { path: 'relay', local: 'relay', remote: 'relay', relay: 'tcp', site: 'udp-blocked' });
  assert.equal(tcp.reason, REASONS.udpBlockedSite);
  assert.equal(tcp.remote, 'relay/tcp');
  // Without the report, the stats alone still see UDP blocked at the site.
  assert.equal(explainPath(r).reason, REASONS.udpBlockedSite);
});

test('an agent report is ignored when it does not match the pair, or is malformed', () => {
  const direct = report('P', techHost, techSrflx, agentHost, agentSrflx, agentRelay, pair('P', 'Ls', 'Rs'));
  assert.equal(explainPath(direct, { path: 'relay', local: 'relay', relay: 'tls', site: 'proxy-only' }).reason, '');
  const r = report('P', techHost, techSrflx, techRelayUDP, agentHost, agentRelay, pair('P', 'Lr', 'Rr'));
  // The agent's end was not the relay (stale report): stats decide.
  assert.equal(explainPath(r, { path: 'relay', local: 'host', relay: 'tls', site: 'proxy-only' }).reason, REASONS.udpBlockedSite);
  // Unknown words from the agent are not shown.
  const odd = explainPath(r, { path: 'relay', local: 'relay', relay: '<b>x</b>', site: '__proto__' });
  assert.equal(odd.reason, REASONS.udpBlockedSite);
  assert.equal(odd.remote, 'relay');
});

test('UDP blocked on both ends with a proxy-only site', () => {
  const tcpRelay = cand('Lt', 'local', 'relay', '203.0.113.30', 40001, 'tls');
  const r = report('P', techHost, tcpRelay, agentHost, agentRelay, pair('P', 'Lt', 'Rr'));
  const p = explainPath(r, { path: 'relay', local: 'relay', relay: 'tls', proxy: '10.0.0.1:3128', site: 'proxy-only' });
  assert.equal(p.reason, `${REASONS.proxyOnly}; ${REASONS.udpBlockedHere}`);
});
