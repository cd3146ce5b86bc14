import { test } from 'node:test';
import assert from 'node:assert/strict';
import { envelope, parseEnvelope, candidateData, sessionFromHost, MAX_MESSAGE } from '../session/signaling.js';
import { golden, goldenNames } from './golden.js';

const S = 'abcdefgh12345678';

test('every golden message parses', () => {
  const names = goldenNames();
  assert.ok(names.length >= 11, `found ${names.length} golden files`);
  for (const name of names) {
    const text = golden(name);
    const env = parseEnvelope(text);
    assert.equal(env.v, 1, name);
    assert.deepEqual(env.data, JSON.parse(text).data, name);
  }
});

test('messages the shell sends match the golden bytes', () => {
  const cases = [
    ['hello-client', envelope('hello', '', { role: 'client', software: 'porthole/dev' })],
    ['offer', envelope('offer', S, { type: 'offer', sdp: 'v=0\r\n' })],
    ['candidate', envelope('candidate', S, candidateData({
      candidate: 'candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host',
      sdpMid: '0', sdpMLineIndex: 0, usernameFragment: null,
    }))],
    ['candidate-end', envelope('candidate', S, candidateData(null))],
    ['session-end', envelope('session.end', S, { reason: 'expired', message: 'the 30-minute limit was reached' })],
  ];
  for (const [name, got] of cases) assert.equal(got, golden(name), name);
});

test('candidate end forms', () => {
  assert.deepEqual(candidateData(null), { candidate: '' });
  assert.deepEqual(candidateData({ candidate: '', sdpMid: '0', sdpMLineIndex: 0 }), { candidate: '' });
  assert.deepEqual(candidateData({ candidate: 'c', sdpMid: null, sdpMLineIndex: null, usernameFragment: 'u' }), { candidate: 'c', usernameFragment: 'u' });
});

test('messages the shell receives decode to what it reads', () => {
  const ready = parseEnvelope(golden('session-ready'));
  assert.equal(ready.type, 'session.ready');
  assert.equal(ready.session, S);
  assert.equal(ready.data.device, 'printer-1');
  assert.equal(ready.data.deviceName, 'Demo printer');
  assert.equal(ready.data.siteName, 'Acme GmbH');
  assert.equal(new Date(ready.data.expires).toISOString(), '2026-11-23T18:30:00.000Z');
  assert.deepEqual(ready.data.iceServers, [{ urls: ['stun:127.0.0.1:3478'] }]);
  const answer = parseEnvelope(golden('answer'));
  assert.deepEqual(answer.data, { type: 'answer', sdp: 'v=0\r\n' });
  const err = parseEnvelope(golden('error'));
  assert.deepEqual(err.data, { code: 'agent_offline', message: 'the agent for printer-1 is not connected' });
  const end = parseEnvelope(golden('session-end'));
  assert.equal(end.data.reason, 'expired');
});

test('bad envelopes are refused with a code', () => {
  const cases = [
    ['not json', '{', 'bad_message'],
    ['array', '[]', 'bad_message'],
    ['version', '{"v":2,"type":"hello"}', 'unsupported'],
    ['unknown type', '{"v":1,"type":"shell"}', 'unsupported'],
    ['needs session', '{"v":1,"type":"answer","data":{}}', 'bad_message'],
    ['bad session', '{"v":1,"type":"answer","session":"ABC","data":{}}', 'bad_message'],
    ['too large', `{"v":1,"type":"hello","data":"${'x'.repeat(MAX_MESSAGE)}"}`, 'too_large'],
  ];
  for (const [name, text, code] of cases) {
    assert.throws(() => parseEnvelope(text), (e) => e.code === code, name);
  }
  assert.throws(() => parseEnvelope(new ArrayBuffer(1)), (e) => e.code === 'bad_message');
});

test('session id from host', () => {
  assert.equal(sessionFromHost('abcdefgh12345678.localhost'), S);
  assert.equal(sessionFromHost('abcdefgh12345678.sessions.localhost'), S);
  assert.equal(sessionFromHost('shell-abcdefgh12345678.sessions.localhost'), S);
  assert.equal(sessionFromHost('shell-.sessions.localhost'), '');
  assert.equal(sessionFromHost('shell-shell-abcdefgh12345678.sessions.localhost'), '');
  assert.equal(sessionFromHost('localhost'), '');
  assert.equal(sessionFromHost('Bad.example.com'), '');
});
