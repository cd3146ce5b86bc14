// The session window's decisions (session/shellflow.js, used by shell.js):
// its token handling, whom it takes messages from, what it makes of them,
// and how the end reads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  againHref, appOrigin, b64url, barRequest, bindError, callbackError, coded, endedReply, endNotice, endOf, endText, errorReply,
  failAction, fragmentToken, joinError, messageSource, notJoinedTitle, readyOf, relayReadyOf, requestOf, savedAuthorization,
  sessionIDOf, tokenAnswer, viewOf, muxPort,
} from '../session/shellflow.js';
import { MSG } from '../session/protocol.js';
import { en } from '../session/messages.js';

const port = { postMessage() {} };

test('coded errors carry the wire code and the detail', () => {
  const e = coded('session_in_use', 'another window');
  assert.ok(e instanceof Error);
  assert.equal(e.code, 'session_in_use');
  assert.equal(e.detail, 'another window');
  assert.equal(e.message, 'session_in_use: another window');
  assert.equal(coded('internal').message, 'internal');
});

test('PKCE values are base64url without padding', () => {
  assert.equal(b64url(new Uint8Array([0xfb, 0xff])), '-_8');
  assert.equal(b64url(new Uint8Array([])), '');
  assert.match(b64url(new Uint8Array(32).fill(0xfe)), /^[A-Za-z0-9_-]{43}$/);
});

test('the app origin comes only from an http(s) authorization endpoint', () => {
  assert.equal(appOrigin('https://porthole.example/oauth/authorize'), 'https://porthole.example');
  assert.equal(appOrigin('http://127.0.0.1:8080/oauth/authorize'), 'http://127.0.0.1:8080');
  assert.equal(appOrigin('javascript:alert(1)'), '');
  assert.equal(appOrigin('not a url'), '');
  assert.equal(appOrigin(undefined), '');
});

test('the session ID is the first label of shell-<session>.<domain>', () => {
  assert.equal(sessionIDOf('shell-abc123.sessions.example'), 'abc123');
  assert.equal(sessionIDOf('abc123.sessions.example'), ''); // the device origin
  assert.equal(sessionIDOf('shell-ABC.sessions.example'), '');
  assert.equal(sessionIDOf('shell-abc'), '');
  assert.equal(sessionIDOf(`shell-${'a'.repeat(65)}.x`), '');
});

test('a token comes from the fragment only as #token=…', () => {
  assert.equal(fragmentToken('#token=s3cret&x=1'), 's3cret');
  assert.equal(fragmentToken('#jobs/x'), '');
  assert.equal(fragmentToken(''), '');
});

test('the OAuth callback is taken only with the state this tab saved', () => {
  const saved = savedAuthorization(JSON.stringify({ state: 'st1', verifier: 'v', back: '/x' }));
  assert.deepEqual(saved, { state: 'st1', verifier: 'v', back: '/x' });
  assert.equal(savedAuthorization(null), null);
  assert.equal(savedAuthorization('{garbled'), null);

  assert.equal(callbackError(new URLSearchParams('code=c&state=st1'), saved), null);
  for (const [q, s] of [['code=c&state=other', saved], ['code=c', saved], ['code=c&state=st1', null]]) {
    const err = callbackError(new URLSearchParams(q), s);
    assert.equal(err.code, 'unauthorized', q);
    assert.equal(err.detail, en['join.stateMismatch'], q);
  }
  const denied = callbackError(new URLSearchParams('state=st1&error=access_denied&error_description=Not+yours'), saved);
  assert.equal(denied.code, 'unauthorized');
  assert.equal(denied.detail, 'Not yours');
  assert.equal(callbackError(new URLSearchParams('state=st1&error=access_denied'), saved).detail, 'access_denied');
});

test('the token endpoint gives a token or a reason', () => {
  assert.deepEqual(tokenAnswer(true, 200, { access_token: 'tok', token_type: 'Bearer' }), { token: 'tok' });
  assert.equal(tokenAnswer(false, 400, { error: 'invalid_grant', error_description: 'code used' }).error.detail, 'code used');
  assert.equal(tokenAnswer(false, 400, { error: 'invalid_grant' }).error.detail, 'invalid_grant');
  assert.equal(tokenAnswer(false, 502, {}).error.detail, 'token request failed (HTTP 502)');
  // A 200 without a string token is a failure too.
  assert.equal(tokenAnswer(true, 200, { access_token: 7 }).error.code, 'unauthorized');
  assert.equal(tokenAnswer(true, 200, null).error.code, 'unauthorized');
});

test('a refused bind keeps the server code and message', () => {
  const e = bindError(409, { code: 'session_in_use', message: 'held by another window' });
  assert.deepEqual([e.code, e.detail], ['session_in_use', 'held by another window']);
  const f = bindError(500, { code: 5, message: null });
  assert.deepEqual([f.code, f.detail], ['unauthorized', 'the session could not be joined (HTTP 500)']);
});

test('join failures are coded, and in use reads differently', () => {
  const c = coded('session_in_use', 'x');
  assert.equal(joinError(c), c);
  assert.deepEqual([joinError(new Error('boom')).code, joinError(new Error('boom')).detail], ['unauthorized', 'boom']);
  assert.equal(joinError('text').detail, 'text');
  assert.equal(notJoinedTitle('session_in_use'), en['ended.inUse']);
  assert.equal(notJoinedTitle('unauthorized'), en['ended.notJoined']);
});

test('a failure before joining someone else’s session refuses; anything else ends it', () => {
  assert.equal(failAction(coded('session_in_use'), false), 'refuse');
  assert.equal(failAction(coded('unauthorized'), false), 'refuse');
  assert.equal(failAction(coded('unavailable'), false), 'end');
  assert.equal(failAction(coded('unauthorized'), true), 'end');
  assert.equal(failAction(new Error('x'), false), 'end');
});

test('the viewer the address asks for', () => {
  const o = 'https://shell-abc.sessions.example';
  assert.deepEqual(viewOf('/?porthole-view=vnc&port=5900&view-only=1', o), { kind: 'vnc', port: 5900, viewOnly: true });
  assert.deepEqual(viewOf('/?porthole-view=ssh&port=22', o), { kind: 'ssh', port: 22, viewOnly: false });
  for (const p of ['/', '/?porthole-view=rdp&port=3389', '/?porthole-view=vnc', '/?porthole-view=vnc&port=0', '/?porthole-view=vnc&port=65536', '/?porthole-view=vnc&port=5.5']) {
    assert.equal(viewOf(p, o), null, p);
  }
});

test('window messages count only from the device origin’s relay or frame', () => {
  const relay = {};
  const frame = {};
  const other = {};
  const deviceOrigin = 'https://abc.sessions.example';
  const w = { deviceOrigin, relay, frame };
  assert.equal(messageSource({ origin: deviceOrigin, source: relay }, w), 'relay');
  assert.equal(messageSource({ origin: deviceOrigin, source: frame }, w), 'frame');
  assert.equal(messageSource({ origin: deviceOrigin, source: other }, w), '');
  assert.equal(messageSource({ origin: 'https://evil.example', source: relay }, w), '');
  assert.equal(messageSource({ origin: 'https://shell-abc.sessions.example', source: frame }, w), '');
  // Before the relay or the frame exists (or after it went), a message with
  // no source is nobody's.
  assert.equal(messageSource({ origin: deviceOrigin, source: null }, { deviceOrigin, relay: undefined, frame: undefined }), '');
  assert.equal(messageSource({ origin: deviceOrigin, source: null }, { deviceOrigin, relay: null, frame: null }), '');
});

test('requests from the worker: a tunnel request, a WebSocket, a refusal or nothing', () => {
  const f = requestOf({ type: MSG.fetch, method: 'GET', target: '/', headers: [], relayed: 12.5 }, [port]);
  assert.equal(f.kind, 'fetch');
  assert.equal(f.req.relayed, 12.5);
  assert.equal(f.req.port, port);
  assert.ok(!('relayed' in requestOf({ type: MSG.fetch, method: 'GET', target: '/', headers: [], relayed: 'x' }, [port]).req));

  const ws = requestOf({ type: MSG.ws, target: '/live', protocols: ['chat'] }, [port]);
  assert.equal(ws.kind, 'ws');
  assert.deepEqual(ws.req.protocols, ['chat']);
  // A WebSocket request that does not pass: its port is told, nothing else.
  assert.deepEqual(requestOf({ type: MSG.ws, target: 'http://elsewhere/' }, [port]), { kind: 'refuse', port });
  assert.equal(requestOf({ type: MSG.ws, target: 'http://elsewhere/' }, [port, port]), null);
  assert.equal(requestOf({ type: MSG.fetch, method: 'GET', target: '//evil/', headers: [] }, [port]), null);
  assert.equal(requestOf({ type: MSG.ended }, [port]), null);
  assert.equal(requestOf(null, []), null);
  assert.equal(requestOf('porthole.fetch', []), null);
});

test('the relay says ready, or why the worker could not start', () => {
  assert.deepEqual(relayReadyOf({ type: MSG.relayReady }), {});
  const { error } = relayReadyOf({ type: MSG.relayReady, error: 'x'.repeat(1000) });
  assert.equal(error.code, 'unsupported');
  assert.equal(error.detail.length, 300);
});

test('a popped-out tab’s bar may ask for the state, and to end once', () => {
  assert.equal(barRequest({ type: 'hello' }, false), 'publish');
  assert.equal(barRequest({ type: 'hello' }, true), 'publish');
  assert.equal(barRequest({ type: 'end' }, false), 'end');
  assert.equal(barRequest({ type: 'end' }, true), '');
  assert.equal(barRequest({ type: 'state' }, false), '');
  assert.equal(barRequest(null, false), '');
});

test('session.ready is read field by field', () => {
  const r = readyOf({ device: 'lp-20', deviceName: 'Line printer', siteName: 'Plant 7', expires: '2026-12-07T15:00:00Z', iceServers: [{ urls: 'turn:x' }], relayTicket: 'tk' });
  assert.deepEqual(r.device, { id: 'lp-20', name: 'Line printer', site: 'Plant 7' });
  assert.equal(r.title, 'Line printer · Plant 7 — Porthole');
  assert.equal(r.bar, 'Line printer · Plant 7');
  assert.equal(r.expires, Date.parse('2026-12-07T15:00:00Z'));
  assert.deepEqual(r.iceServers, [{ urls: 'turn:x' }]);
  assert.equal(r.relayTicket, 'tk');

  const bare = readyOf({ device: 'lp-20', iceServers: 'turn:x', relayTicket: 5, deviceName: '' });
  assert.deepEqual(bare.device, { id: 'lp-20', name: 'lp-20', site: '' });
  assert.equal(bare.title, 'lp-20 — Porthole');
  assert.equal(bare.bar, 'lp-20');
  assert.ok(Number.isNaN(bare.expires));
  assert.deepEqual(bare.iceServers, []);
  assert.equal(bare.relayTicket, '');
  assert.equal(readyOf({}).title, `${en['device.fallback']} — Porthole`);
});

test('the end: what signaling says, what this window says, what the panel reads', () => {
  assert.deepEqual(endOf({ reason: 'admin', message: 'maintenance' }), { reason: 'admin', message: 'maintenance' });
  assert.deepEqual(endOf({ reason: 3 }), { reason: 'error', message: '' });

  assert.deepEqual(endNotice('client', ''), { reason: 'client' });
  assert.deepEqual(endNotice('expired', ''), { reason: 'error' });
  assert.equal(endNotice('error', 'x'.repeat(600)).message.length, 500);

  assert.equal(endText('admin', ''), en['end.admin']);
  assert.equal(endText('agent_lost', 'network'), `${en['end.agent_lost']} network`);
  assert.equal(endText('weird', ''), en['ended.over']);
  for (const r of ['client', 'agent', 'expired', 'agent_lost', 'client_lost', 'admin', 'error']) assert.ok(en[`end.${r}`], r);
});

test('the way on after the end, unless the session is another window’s', () => {
  assert.equal(againHref('https://porthole.example', 'abc', 'expired'), 'https://porthole.example/#jobs/abc');
  assert.equal(againHref('https://porthole.example', 'abc', 'session_in_use'), '');
  assert.equal(againHref('', 'abc', 'expired'), '');
  assert.equal(againHref('https://porthole.example', '', 'expired'), '');
});

test('answers to the worker after the end and on a failure', () => {
  assert.deepEqual(endedReply(''), { type: 'error', code: 'session_ended', message: 'session_ended' });
  assert.deepEqual(endedReply('expired'), { type: 'error', code: 'session_ended', message: 'expired' });
  assert.deepEqual(errorReply(coded('bad_gateway', 'refused')), { type: 'error', code: 'bad_gateway', message: 'refused' });
  assert.deepEqual(errorReply(new Error('boom')), { type: 'error', code: 'internal', message: 'boom' });
});

test('shell.js leaves these decisions to shellflow.js', () => {
  // The session window decides through the functions tested here, not
  // through copies of them (a guard against the logic drifting back).
  const src = readFileSync(new URL('../session/shell.js', import.meta.url), 'utf8');
  for (const name of ['messageSource', 'requestOf', 'callbackError', 'tokenAnswer', 'bindError', 'failAction', 'endNotice', 'endText', 'againHref', 'readyOf']) {
    assert.match(src, new RegExp(`\\b${name}\\(`), name);
  }
  assert.doesNotMatch(src, /e\.origin !== DEVICE_ORIGIN/);
  assert.doesNotMatch(src, /function (coded|b64url|appOrigin|viewOf)\(/);
});

test('muxPort: the one reply carries the id back and frees the entry; an abort reaches onmessage', () => {
  const sent = [];
  const port = { postMessage: (v, transfer) => sent.push([v, transfer]) };
  const table = new Map();
  const p = muxPort(port, 7, table);
  assert.equal(table.get(7), p);
  // A request as the worker sends it by id passes the same checks as one with a port.
  const r = requestOf({ type: MSG.fetch, id: 7, method: 'GET', target: '/a', headers: [] }, [p]);
  assert.equal(r?.kind, 'fetch');
  assert.equal(r.req.port, p);
  let aborted = 0;
  p.onmessage = (e) => {
    if (e.data?.type === 'abort') aborted++;
  };
  table.get(7).abort();
  assert.equal(aborted, 1);
  const buf = new ArrayBuffer(4);
  p.postMessage({ type: 'response', status: 200, bytes: buf }, [buf]);
  assert.deepEqual(sent, [[{ type: 'response', status: 200, bytes: buf, id: 7 }, [buf]]]);
  assert.equal(table.size, 0);
  // An abort after the answer finds nothing.
  assert.equal(table.get(7), undefined);
});
