import { test } from 'node:test';
import assert from 'node:assert/strict';
import { enrollCommand, enrollmentRequest, healthView, openBlocker, signalingRoute } from '../app/agents.js';

test('healthView says when a device is reachable only with old TLS', () => {
  const v = healthView({ online: true, health: { reachable: true, tls: { version: 'TLS 1.0', cipher: 'TLS_RSA_WITH_AES_128_CBC_SHA', note: 'This device only speaks TLS 1.0.' } } });
  assert.equal(v.kind, 'ok');
  assert.equal(v.text, 'Reachable, only with TLS 1.0 (old, weak encryption)');
  assert.equal(v.detail, 'This device only speaks TLS 1.0.');
});

test('healthView says the device status in words and keeps the raw finding for details', () => {
  assert.equal(healthView({ id: 'p', online: true }).kind, 'unknown');
  assert.equal(healthView({ id: 'p', online: true }).text, 'Not checked yet');
  const ok = healthView({ online: true, health: { reachable: true, checked: '2026-01-02T03:04:05Z' } });
  assert.deepEqual([ok.kind, ok.text, ok.checked], ['ok', 'Reachable', '2026-01-02T03:04:05Z']);
  const refused = healthView({ online: true, httpPort: 80, health: { reachable: false, problem: 'dial tcp 10.0.0.5:80: connect: connection refused' } });
  assert.equal(refused.kind, 'bad');
  assert.equal(refused.text, 'Unreachable — no answer on port 80');
  assert.equal(refused.detail, 'dial tcp 10.0.0.5:80: connect: connection refused');
  assert.doesNotMatch(refused.text, /dial|refused/, 'the Go error stays behind the details toggle');
  assert.equal(healthView({ online: true, ports: [9100], health: { reachable: false } }).text, 'Unreachable — no answer on port 9100');
  assert.equal(healthView({ online: true, health: { reachable: false } }).text, 'Unreachable');
  const other = healthView({ online: true, health: { reachable: true, problem: 'serial number is X, expected Y' } });
  assert.equal(other.kind, 'bad');
  assert.match(other.text, /^Wrong device/);
  assert.equal(other.detail, 'serial number is X, expected Y');
});

test('an offline agent is never shown as reachable, whatever its last check said', () => {
  const v = healthView({ online: false, health: { reachable: true } });
  assert.equal(v.kind, 'off');
  assert.match(v.text, /^Offline/);
});

test('openBlocker names why Open is disabled', () => {
  assert.equal(openBlocker({ canOpen: true }), '');
  assert.equal(openBlocker({ canOpen: false, online: false, enabled: true }), 'devices.why.offline');
  assert.equal(openBlocker({ canOpen: false, online: true, enabled: false }), 'devices.why.disabled');
  assert.equal(openBlocker({ canOpen: false, online: true, enabled: true }), 'devices.why.role');
});

test('enrollCommand quotes what the shell would read otherwise', () => {
  assert.equal(enrollCommand('https://app.example.com', 'phe_abc-123'), 'porthole-agent enroll --server https://app.example.com --token phe_abc-123');
  assert.equal(enrollCommand('http://x', "a b'c"), `porthole-agent enroll --server http://x --token 'a b'\\''c'`);
  assert.equal(enrollCommand('http://x', '$(reboot)'), "porthole-agent enroll --server http://x --token '$(reboot)'");
});

test('enrollmentRequest leaves out what was not given', () => {
  assert.deepEqual(enrollmentRequest({ site: 'lab', agent: '', name: '', hours: '' }), { site: 'lab' });
  assert.deepEqual(enrollmentRequest({ site: 'lab', agent: 'a1', name: 'Front desk', hours: '2' }), { site: 'lab', agent: 'a1', name: 'Front desk', expiresIn: 7200 });
  assert.deepEqual(enrollmentRequest({ site: 'lab', hours: '-1' }), { site: 'lab' });
});

test('servicesView lists what a device offers', async () => {
  const { servicesView, hasWebPage } = await import('../app/agents.js');
  const gw = { services: [{ kind: 'ssh', port: 22 }, { kind: 'vnc', port: 5900 }, { kind: 'tcp', port: 502, name: 'Modbus' }] };
  assert.deepEqual(servicesView(gw).map((s) => s.label), ['SSH :22', 'VNC :5900', 'TCP :502 Modbus']);
  assert.equal(hasWebPage(gw), false);
  const printer = { httpPort: 80, ports: [80, 9100] }; // an older agent: no services
  assert.deepEqual(servicesView(printer).map((s) => s.label), ['Web :80', 'TCP :9100']);
  assert.equal(hasWebPage(printer), true);
  assert.equal(hasWebPage({ services: [{ kind: 'web', port: 443, scheme: 'https' }] }), true);
});

test('healthView says not confirmed for a device that answered no probe', async () => {
  const { healthView } = await import('../app/agents.js');
  const v = healthView({ health: { reachable: false, unconfirmed: true, problem: 'it answered none of the probes' } });
  assert.equal(v.kind, 'unknown');
  assert.match(v.text, /^Not confirmed/);
});

test('openBlocker: a device without a web page has no Open', async () => {
  const { openBlocker } = await import('../app/agents.js');
  assert.equal(openBlocker({ canOpen: true, online: true, enabled: true, services: [{ kind: 'ssh', port: 22 }] }), 'devices.why.noWeb');
  assert.equal(openBlocker({ canOpen: true, online: true, enabled: true, services: [{ kind: 'web', port: 80 }] }), '');
});

test('an SSH-only device that is unreachable names no port', async () => {
  const { healthView } = await import('../app/agents.js');
  const v = healthView({ online: true, ports: [22], services: [{ kind: 'ssh', port: 22 }], health: { reachable: false, problem: 'no route' } });
  assert.equal(v.kind, 'bad');
  assert.doesNotMatch(v.text, /port/);
});

test('signalingRoute says how the device\'s agent reaches signaling: directly or through the site\'s proxy', () => {
  assert.equal(signalingRoute({ health: { reachable: true, signaling: 'via proxy 192.168.1.2:3128' } }), 'via proxy 192.168.1.2:3128');
  assert.equal(signalingRoute({ health: { reachable: false, signaling: 'direct' } }), 'directly');
  assert.equal(signalingRoute({ health: { reachable: true } }), '');
  assert.equal(signalingRoute({ health: { signaling: 42 } }), '');
  assert.equal(signalingRoute({}), '');
});
