import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MSG, tunnelRequest, pageHint, validOrigin, validReferrer, deviceOriginOf, shellOriginOf } from '../session/protocol.js';

const port = { postMessage() {} };
const ok = {
  type: MSG.fetch, method: 'POST', target: '/settings?x=1', headers: [['content-type', 'text/plain']], cookie: 'a=1',
  body: new ReadableStream(), origin: 'https://abcdefgh12345678.sessions.example', referrer: 'https://abcdefgh12345678.sessions.example/settings',
  dest: 'iframe', navigate: true,
};

test('the shell takes a tunnel request from the relay, and only its fields', () => {
  const r = tunnelRequest({ ...ok, extra: 'ignored', type: MSG.fetch }, [port]);
  assert.equal(r.method, 'POST');
  assert.equal(r.port, port);
  assert.ok(!('extra' in r) && !('type' in r));
  assert.deepEqual(Object.keys(r).sort(), ['body', 'cookie', 'dest', 'headers', 'method', 'navigate', 'origin', 'port', 'referrer', 'target']);
  // Defaults for what a worker may leave out.
  const min = tunnelRequest({ type: MSG.fetch, method: 'GET', target: '/', headers: [] }, [port]);
  assert.deepEqual([min.cookie, min.body, min.origin, min.referrer, min.dest, min.navigate], ['', null, '', '', '', false]);
});

test('anything else on the relay channel is refused', () => {
  const bad = [
    [null, [port]],
    ['porthole.fetch', [port]],
    [{ ...ok, type: MSG.ended }, [port]],
    [{ ...ok, type: 'porthole.end-session' }, [port]],
    [{ ...ok, type: MSG.session, expires: 0 }, [port]],
    [ok, []],
    [ok, [port, port]],
    [ok, [{}]],
    [{ ...ok, method: 'GET /x' }, [port]],
    [{ ...ok, method: 'x'.repeat(33) }, [port]],
    [{ ...ok, target: 'http://evil.example/' }, [port]],
    [{ ...ok, target: '//evil.example/' }, [port]],
    [{ ...ok, target: '/' + 'x'.repeat(9000) }, [port]],
    [{ ...ok, headers: 'Cookie: x' }, [port]],
    [{ ...ok, headers: [['a']] }, [port]],
    [{ ...ok, headers: [['a', 1]] }, [port]],
    [{ ...ok, headers: Array.from({ length: 129 }, () => ['a', 'b']) }, [port]],
    [{ ...ok, cookie: 7 }, [port]],
    [{ ...ok, body: 'bytes' }, [port]],
    [{ ...ok, origin: 'https://evil.example/path' }, [port]],
    [{ ...ok, origin: 'javascript:alert(1)' }, [port]],
    [{ ...ok, referrer: 'javascript:alert(1)' }, [port]],
    [{ ...ok, referrer: 'not a url' }, [port]],
    [{ ...ok, navigate: 'yes' }, [port]],
  ];
  for (const [m, ports] of bad) assert.equal(tunnelRequest(m, ports), null, JSON.stringify(m)?.slice(0, 80));
});

test('page hints are display-only and bounded', () => {
  assert.deepEqual(pageHint({ type: MSG.hint, kind: 'location', path: '/supplies?x=1' }), { kind: 'location', path: '/supplies?x=1', reason: '' });
  assert.deepEqual(pageHint({ type: MSG.hint, kind: 'framebust', reason: 'hidden', path: 'javascript:x' }), { kind: 'framebust', path: '', reason: 'hidden' });
  assert.equal(pageHint({ type: MSG.hint, kind: 'end' }), null);
  assert.equal(pageHint({ type: MSG.fetch, kind: 'location' }), null);
  assert.equal(pageHint({ type: MSG.hint, kind: 'location', path: '/' + 'x'.repeat(5000) }).path.length, 2048);
});

test('origins', () => {
  for (const o of ['https://a.example', 'http://abcdefgh12345678.sessions.localhost:8080', 'http://[::1]:8090']) assert.ok(validOrigin(o), o);
  for (const o of ['null', '', 'https://A.example', 'https://a.example/', 'ftp://a', 'https://a.example?x', 'https://a b']) assert.ok(!validOrigin(o), o);
  assert.ok(validReferrer('https://a.example/x?y'));
  assert.ok(!validReferrer('/relative') && !validReferrer('data:text/html,x') && !validReferrer('https://a/' + 'x'.repeat(5000)));
  const loc = { protocol: 'https:', host: 'shell-abcdefgh12345678.s.example:8443' };
  assert.equal(deviceOriginOf(loc), 'https://abcdefgh12345678.s.example:8443');
  assert.equal(shellOriginOf({ protocol: 'https:', host: 'abcdefgh12345678.s.example:8443' }), 'https://shell-abcdefgh12345678.s.example:8443');
});
