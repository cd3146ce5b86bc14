import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  buildRequestHead, targetOf, responseHeaders, withoutDirective, redirectTarget, parseCookiePair,
  cookieHeader, statusForCode, requestOrigin, sessionPolicy, DEVICE_CSP, CREDENTIALS_HEADER,
} from '../session/headers.js';
import { isToken, validFieldValue } from '../session/frames.js';

test('request head has the proto.RequestHead shape', () => {
  const head = buildRequestHead({
    method: 'POST',
    target: '/settings?a=1',
    headers: [
      ['content-type', 'application/x-www-form-urlencoded'],
      ['accept', 'text/html'],
      ['x-requested-with', 'XMLHttpRequest'],
    ],
    cookie: 'ui_lang=en',
    contentLength: 12,
  });
  assert.equal(JSON.stringify(head),
    '{"method":"POST","target":"/settings?a=1","contentLength":12,"header":{"Content-Type":["application/x-www-form-urlencoded"],"Accept":["text/html"],"X-Requested-With":["XMLHttpRequest"],"Cookie":["ui_lang=en"]}}');
});

test('request head drops what the tunnel or the agent owns', () => {
  const head = buildRequestHead({
    method: 'GET',
    target: '/',
    headers: [
      ['Host', 'evil'], ['Connection', 'close'], ['Keep-Alive', '5'], ['Transfer-Encoding', 'chunked'],
      ['Content-Length', '5'], ['Cookie', 'forged=1'], ['Upgrade', 'websocket'], ['TE', 'trailers'],
      ['Proxy-Authorization', 'x'], ['Sec-Fetch-Mode', 'navigate'], ['Origin', 'http://x'], ['Referer', 'http://x/'],
      ['Service-Worker-Navigation-Preload', 'true'], ['X-Bad', 'a\r\nb'], ['bad name', 'v'],
      ['Accept', 'a'], ['accept', 'b'],
    ],
    cookie: '',
    contentLength: 0,
  });
  assert.deepEqual(head, { method: 'GET', target: '/', contentLength: 0, header: { Accept: ['a', 'b'] } });
  assert.deepEqual(buildRequestHead({ method: 'GET', target: '/', headers: [], cookie: '', contentLength: 0 }), { method: 'GET', target: '/', contentLength: 0 });
});

test('request head refuses what proto refuses', () => {
  assert.throws(() => buildRequestHead({ method: 'GE T', target: '/', contentLength: 0 }));
  assert.throws(() => buildRequestHead({ method: 'GET', target: 'http://10.0.0.1/', contentLength: 0 }));
  assert.throws(() => buildRequestHead({ method: 'GET', target: '//evil/', contentLength: 0 }));
});

test('target is origin-form without the fragment', () => {
  assert.equal(targetOf('http://s.localhost:8080/a/b?x=1&y=%20#frag'), '/a/b?x=1&y=%20');
  assert.equal(targetOf('http://s.localhost:8080'), '/');
});

test('response headers drop what the page must not see and add the session policy', () => {
  const out = responseHeaders({
    'Content-Type': ['text/html'],
    'Set-Cookie': ['sid=1; HttpOnly'],
    Connection: ['keep-alive'],
    'Transfer-Encoding': ['chunked'],
    'X-Frame-Options': ['DENY'],
    'Access-Control-Allow-Origin': ['*'],
    'Strict-Transport-Security': ['max-age=1; includeSubDomains'],
    'Content-Encoding': ['gzip'],
    'Content-Security-Policy': ["default-src 'self'; frame-ancestors 'none'; img-src *"],
    Location: ['/login'],
    'Cache-Control': ['no-cache'],
  });
  assert.deepEqual(out, [
    ['Content-Type', 'text/html'],
    ['Content-Security-Policy', "default-src 'self'; img-src *"],
    ['Location', '/login'],
    ['Cache-Control', 'no-cache'],
    ['Content-Security-Policy', DEVICE_CSP],
    ['X-Content-Type-Options', 'nosniff'],
    ['Referrer-Policy', 'same-origin'],
  ]);
  for (const [k, v] of out) assert.ok(isToken(k) && validFieldValue(v));
});

test('session policy limits every fetch directive to the own origin', () => {
  for (const d of ["connect-src 'self'", "form-action 'self'", "base-uri 'self'", "frame-ancestors 'self'"]) {
    assert.ok(DEVICE_CSP.includes(d), d);
  }
  assert.ok(!/https?:|\*/.test(DEVICE_CSP), 'no remote origins');
});

test('withoutDirective', () => {
  assert.equal(withoutDirective("frame-ancestors 'none'", 'frame-ancestors'), '');
  assert.equal(withoutDirective("a x;  FRAME-ANCESTORS 'none' ;b y, frame-ancestors x; c", 'frame-ancestors'), 'a x; b y, c');
});

test('redirects stay on the session origin', () => {
  const self = 'http://abcdefgh12345678.localhost:8080';
  const req = `${self}/settings`;
  assert.deepEqual(redirectTarget('/login?next=%2F', self, req), { location: '/login?next=%2F' });
  assert.deepEqual(redirectTarget('admin#top', self, req), { location: '/admin#top' });
  assert.deepEqual(redirectTarget(`${self}/x`, self, req), { location: '/x' });
  assert.deepEqual(redirectTarget('http://example.invalid/', self, req), { offsite: 'http://example.invalid/' });
  assert.deepEqual(redirectTarget('//evil.example/', self, req), { offsite: 'http://evil.example/' });
  assert.deepEqual(redirectTarget('http://192.168.1.10/', self, req), { offsite: 'http://192.168.1.10/' });
});

test('cookies', () => {
  assert.deepEqual(parseCookiePair('ui_lang=en'), { name: 'ui_lang', value: 'en' });
  assert.deepEqual(parseCookiePair('a=b=c'), { name: 'a', value: 'b=c' });
  assert.deepEqual(parseCookiePair('q="x y"'), { name: 'q', value: '"x y"' });
  assert.equal(parseCookiePair('=x'), null);
  assert.equal(parseCookiePair('noequals'), null);
  assert.equal(parseCookiePair('a=b; Path=/'), null);
  assert.equal(cookieHeader([{ name: 'a', value: '1' }, { name: 'b', value: '' }, { name: 'bad name', value: 'x' }, { name: 'c', value: 'x;y' }]), 'a=1; b=');
  assert.equal(cookieHeader([]), '');
});

test('error codes map to statuses', () => {
  assert.equal(statusForCode('device_timeout'), 504);
  assert.equal(statusForCode('device_failed'), 502);
  assert.equal(statusForCode('port_not_allowed'), 403);
  assert.equal(statusForCode('session_ended'), 410);
  assert.equal(statusForCode('audit_backlog'), 503);
  assert.equal(statusForCode('whatever'), 502);
});

test('credentials come from the shell only', () => {
  const head = buildRequestHead({
    method: 'GET', target: '/basic/', contentLength: 0,
    headers: [['X-Porthole-Credentials', 'ZXZpbDpldmls'], ['x-porthole-other', '1']],
    credentials: 'c2VydmljZTpzZXJ2aWNl',
  });
  assert.deepEqual(head.header, { [CREDENTIALS_HEADER]: ['c2VydmljZTpzZXJ2aWNl'] });
  const page = buildRequestHead({ method: 'GET', target: '/', contentLength: 0, headers: [['X-Porthole-Credentials', 'ZXZpbDpldmls']] });
  assert.equal(page.header, undefined);
  const bad = buildRequestHead({ method: 'GET', target: '/', contentLength: 0, headers: [], credentials: 'a\r\nb' });
  assert.equal(bad.header, undefined);
});

test('the session policy appears once, and device reporting is dropped', () => {
  const out = responseHeaders({
    'Content-Security-Policy': [DEVICE_CSP, "img-src 'self'; report-uri https://evil.example/r"],
    'X-Content-Type-Options': ['nosniff'],
    'Referrer-Policy': ['unsafe-url'],
    'Report-To': ['{"group":"x"}'],
    NEL: ['{}'],
    'Clear-Site-Data': ['"*"'],
  });
  assert.deepEqual(out, [
    ['Content-Security-Policy', "img-src 'self'"],
    ['Content-Security-Policy', DEVICE_CSP],
    ['X-Content-Type-Options', 'nosniff'],
    ['Referrer-Policy', 'same-origin'],
  ]);
});

test('cookies tossed at the parent domain are not sent to the device', () => {
  assert.equal(cookieHeader([
    { name: 'sid', value: '1', domain: null },
    { name: 'tossed', value: 'x', domain: 'localhost' },
    { name: 'ui_lang', value: 'en' },
  ]), 'sid=1; ui_lang=en');
});

test('origin and referrer travel as fields, validated, and the client origin with them', () => {
  const head = buildRequestHead({
    method: 'POST', target: '/settings', contentLength: 3,
    headers: [['origin', 'https://evil.example'], ['referer', 'https://evil.example/x']], // from the header list: dropped
    origin: 'https://abcdefgh12345678.sessions.example',
    referrer: 'https://abcdefgh12345678.sessions.example/settings?tab=1',
    clientOrigin: 'https://abcdefgh12345678.sessions.example',
  });
  assert.deepEqual(head.header.Origin, ['https://abcdefgh12345678.sessions.example']);
  assert.deepEqual(head.header.Referer, ['https://abcdefgh12345678.sessions.example/settings?tab=1']);
  assert.equal(head.clientOrigin, 'https://abcdefgh12345678.sessions.example');
  assert.deepEqual(buildRequestHead({ method: 'POST', target: '/', contentLength: 0, origin: 'null' }).header.Origin, ['null']);
  const none = buildRequestHead({ method: 'GET', target: '/', contentLength: 0, origin: 'bogus', referrer: '/rel', clientOrigin: 'x' });
  assert.equal(none.header, undefined);
  assert.equal(none.clientOrigin, undefined);
});

test('the Origin a worker reports is the one the browser would send', () => {
  const self = 'https://abcdefgh12345678.sessions.example';
  const req = (method, mode, origin, policy = 'strict-origin-when-cross-origin') => ({
    method, mode, referrerPolicy: policy, headers: new Headers(origin ? { origin } : {}),
  });
  assert.equal(requestOrigin(req('POST', 'navigate', 'https://evil.example'), self), 'https://evil.example'); // a form from elsewhere
  assert.equal(requestOrigin(req('POST', 'navigate', 'null'), self), 'null');
  assert.equal(requestOrigin(req('GET', 'navigate'), self), '');
  assert.equal(requestOrigin(req('GET', 'cors'), self), '');
  assert.equal(requestOrigin(req('POST', 'cors'), self), self); // fetch() of the page itself
  assert.equal(requestOrigin(req('PUT', 'same-origin'), self), self);
  assert.equal(requestOrigin(req('POST', 'cors', '', 'no-referrer'), self), 'null');
});

test('the session policy lets only the shell frame device pages, and top-level pages frame the bar', () => {
  const shell = 'https://shell-abcdefgh12345678.sessions.example';
  const framed = sessionPolicy(shell, false);
  assert.ok(framed.includes(`frame-ancestors 'self' ${shell};`));
  assert.ok(!framed.includes('frame-src'));
  const top = sessionPolicy(shell, true);
  assert.ok(top.endsWith(`; frame-src 'self' data: blob: ${shell}`));
  const doc = responseHeaders({ 'Cache-Control': ['max-age=3600'], 'Origin-Agent-Cluster': ['?0'] }, { shellOrigin: shell, document: true, topLevel: true });
  assert.deepEqual(doc.filter(([k]) => k === 'Cache-Control'), [['Cache-Control', 'no-store']]);
  assert.deepEqual(doc.filter(([k]) => k === 'Origin-Agent-Cluster'), [['Origin-Agent-Cluster', '?1']]);
  assert.deepEqual(doc.filter(([k]) => k === 'Content-Security-Policy'), [['Content-Security-Policy', top]]);
  const sub = responseHeaders({ 'Cache-Control': ['max-age=3600'] }, { shellOrigin: shell });
  assert.deepEqual(sub.filter(([k]) => k === 'Cache-Control'), [['Cache-Control', 'max-age=3600']]);
});
