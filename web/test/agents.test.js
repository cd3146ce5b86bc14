import { test } from 'node:test';
import assert from 'node:assert/strict';
import { enrollCommand, enrollmentRequest, healthView } from '../app/agents.js';

test('healthView reads the agent check of a device', () => {
  assert.deepEqual(healthView({ id: 'p' }).kind, 'unknown');
  const ok = healthView({ health: { reachable: true, checked: '2026-01-02T03:04:05Z' } });
  assert.equal(ok.kind, 'ok');
  assert.equal(ok.text, 'reachable');
  assert.match(ok.title, /^checked /);
  const bad = healthView({ health: { reachable: false, problem: 'MAC address is 02:00:00:00:00:02, expected 02:00:00:00:00:01' } });
  assert.equal(bad.kind, 'bad');
  assert.equal(bad.text, 'unreachable: MAC address is 02:00:00:00:00:02, expected 02:00:00:00:00:01');
  assert.equal(healthView({ health: { reachable: false } }).text, 'unreachable');
  const other = healthView({ health: { reachable: true, problem: 'serial number is X, expected Y' } });
  assert.equal(other.kind, 'bad');
  assert.equal(other.text, 'identity check failed: serial number is X, expected Y');
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
