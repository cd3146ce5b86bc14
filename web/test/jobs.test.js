import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatBytes, formatDuration, filterQuery, viaLabel, relayLines } from '../app/jobs.js';

test('relayLines lists each relay a session used', () => {
  const fmt = (s) => s.slice(11, 19);
  const relays = [
    { relay: 'turn:203.0.113.30:3478?transport=udp', from: '2026-12-07T18:00:01Z', until: '2026-12-07T18:00:07Z' },
    { relay: 'turn:203.0.113.31:3478?transport=udp', from: '2026-12-07T18:00:07Z' },
  ];
  assert.deepEqual(relayLines(relays, fmt), ['203.0.113.30:3478: 18:00:01 – 18:00:07', '203.0.113.31:3478: since 18:00:07']);
  assert.deepEqual(relayLines(undefined, fmt), []);
  assert.deepEqual(relayLines([{ relay: '203.0.113.9', from: '2026-12-07T18:00:01Z' }], fmt), ['203.0.113.9: since 18:00:01']);
});

test('formatBytes', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(5 * 1024 * 1024), '5.0 MiB');
});

test('formatDuration', () => {
  assert.equal(formatDuration(0), '0s');
  assert.equal(formatDuration(95_000), '1m 35s');
  assert.equal(formatDuration(30 * 60_000), '30m 0s');
  assert.equal(formatDuration(2 * 3600_000 + 60_000), '2h 1m');
});

test('filterQuery drops empty filters and encodes the rest', () => {
  assert.equal(filterQuery({ user: '', device: '' }), '');
  assert.equal(filterQuery({ user: 'tech', device: 'printer 1', reason: '' }), '?user=tech&device=printer+1');
});

test('jobWords shows names and words, never IDs where names exist', async () => {
  const { jobWords } = await import('../app/jobs.js');
  const j = { type: 'Open Device Webpage', user: 'u_7f3a', userName: 'ann', device: 'printer-1', deviceName: 'Front printer', site: 'lab', siteName: 'Acme Ltd', path: 'relay', endReason: 'admin', endedByName: 'boss', state: 'ended' };
  assert.deepEqual(jobWords(j), { type: 'Open Device Webpage', user: 'ann', device: 'Front printer', site: 'Acme Ltd', path: 'Relayed', reason: 'Terminated by an administrator', endedBy: 'boss' });
  // An older job without names borrows them from the device list.
  const old = jobWords({ type: 'Open Device Port', user: 'u1', device: 'printer-1', site: 'lab', state: 'connected', live: true }, new Map([['printer-1', { name: 'Front printer', siteName: 'Acme Ltd' }]]));
  assert.deepEqual([old.type, old.device, old.site, old.reason], ['Open Device Port', 'Front printer', 'Acme Ltd', 'Live']);
  assert.equal(jobWords({ device: 'x', state: 'verifying' }).reason, 'Checking the device');
});

test('viaLabel names the path an entry took', () => {
  assert.equal(viaLabel({ via: 'signaling' }), 'Signaling');
  assert.equal(viaLabel({ via: 'webrtc' }), 'Peer to peer');
  assert.equal(viaLabel({}), 'Peer to peer'); // entries older than the fallback
});

test('changeSummary puts what changed first, then what was refused', async () => {
  const { changeSummary, changeKind, fieldsText } = await import('../app/jobs.js');
  const entries = [
    { method: 'GET', url: '/status', kind: 'http' },
    { method: 'POST', url: '/settings/network', change: true, form: { fields: [{ name: 'hostname', value: 'p1' }, { name: 'admin_password', redacted: true }] } },
    { method: 'POST', url: '/settings/snmp', change: true },
    { method: 'GET', url: '/cgi-bin/reset?now=1', change: true },
    { method: 'POST', url: '/firmware/upload', change: true, refused: 'The site’s policy refuses /firmware in this session', form: { fields: [{ name: 'image', file: 'fw.bin', size: 4096 }], truncated: true } },
  ];
  assert.equal(changeSummary(entries), '3 settings changes, 1 firmware upload attempt refused');
  assert.equal(changeSummary(entries.slice(0, 1)), '');
  assert.equal(changeKind(entries[0]), '');
  assert.equal(changeKind({ method: 'POST', url: '/upload', form: { fields: [{ name: 'f', file: 'a.txt' }] }, change: true }), 'upload');
  assert.equal(changeKind({ method: 'POST', url: '/settings', refused: 'read-only', change: true }), 'settings');
  assert.equal(changeKind({ kind: 'tcp', port: 22, refused: 'read-only' }), 'request');
  assert.equal(changeSummary([{ method: 'POST', url: '/a', change: true, refused: 'x' }, { method: 'POST', url: '/b', change: true, refused: 'x' }]), '2 settings change attempts refused');
  assert.equal(fieldsText(entries[1].form), 'hostname=p1, admin_password=(redacted)');
  assert.equal(fieldsText(entries[4].form), 'image=fw.bin (4.0 KiB), … (more not recorded)');
});

test('jobChanges words the counts of a job row', async () => {
  const { jobChanges } = await import('../app/jobs.js');
  assert.equal(jobChanges({ changes: 3, refused: 1 }), '3 changes, 1 refused');
  assert.equal(jobChanges({ changes: 1 }), '1 change');
  assert.equal(jobChanges({}), '');
});
