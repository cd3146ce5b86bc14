// The page shim (web/session/page/), bundled as web.go bundles it and run
// in a fake window: what it tells the session window, and what it adds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join, dirname } from 'node:path';
import vm from 'node:vm';
import { en } from '../session/messages.js';

const here = dirname(fileURLToPath(import.meta.url));
const parts = JSON.parse(
  '[' + /var pageParts = \[\]string\{([^}]*)\}/.exec(readFileSync(join(here, '../web.go'), 'utf8'))[1] + ']',
);
// The texts web.go's pageBundle puts first (shimMessages), from the session catalog.
const shimKeys = JSON.parse(
  '[' + /var shimMessages = \[\]string\{([^}]*)\}/.exec(readFileSync(join(here, '../web.go'), 'utf8'))[1] + ']',
);
const text = Object.fromEntries(shimKeys.map((k) => [k, en[k]]));
const bundle = '(function () {\n\'use strict\';\n' + `const TEXT = Object.freeze(${JSON.stringify(text)});\n` +
  parts.map((p) => readFileSync(join(here, '../session/page', p), 'utf8')).join('\n') + '\n})();';

const DEVICE = 'https://abcdefgh12345678.sessions.example';
const SHELL = 'https://shell-abcdefgh12345678.sessions.example';

/** A window just good enough for the shim. */
function fakeWindow({ framed = true, parentOrigin = SHELL, hidden = false, worker = null } = {}) {
  const listeners = {};
  const posted = [];
  const added = [];
  const requests = [];
  const delays = [];
  const on = (target) => (type, fn) => { (listeners[`${target}:${type}`] ||= []).push(fn); };
  const fire = (target, type, ev = {}) => { for (const fn of listeners[`${target}:${type}`] || []) fn(ev); };
  const style = { display: hidden ? 'none' : 'block', visibility: 'visible', opacity: '1' };
  const el = (tag) => ({
    tag, attrs: {}, children: [], shadow: null, style: {},
    setAttribute(k, v) { this.attrs[k] = v; },
    appendChild(c) { this.children.push(c); },
    attachShadow(o) { this.shadow = { mode: o.mode, children: [], appendChild(c) { this.children.push(c); } }; return this.shadow; },
  });
  const win = {
    location: { protocol: 'https:', host: 'abcdefgh12345678.sessions.example', pathname: '/status', search: '?x=1', hash: '', href: DEVICE + '/status?x=1', origin: DEVICE, assigned: [], assign(u) { this.assigned.push(u); },
      ancestorOrigins: framed ? [parentOrigin] : [] },
    history: { pushState() {}, replaceState() {} },
    addEventListener: on('window'),
    setTimeout: (fn, ms) => { delays.push(ms); fn(); },
    getComputedStyle: () => style,
    WebSocket: function NativeWebSocket(url) { this.url = url; },
    XMLHttpRequest: class {
      open(method, url) { this.req = { method, url }; }
      send() { requests.push(this.req); }
    },
    navigator: { serviceWorker: worker ? { controller: worker } : undefined },
    MessageChannel, Blob, MessageEvent, DOMException, EventTarget, Event, TextEncoder, URL, queueMicrotask,
  };
  // Posted messages cross the realm as the browser clones them.
  const parent = { postMessage: (m, origin) => posted.push(JSON.parse(JSON.stringify({ m, origin }))) };
  win.window = win;
  win.self = win;
  win.top = framed ? parent : win;
  win.parent = framed ? parent : win;
  win.document = {
    readyState: 'loading',
    addEventListener: on('document'),
    getElementById: () => null,
    createElement: el,
    documentElement: { appendChild: (c) => added.push(c) },
    body: { appendChild: (c) => added.push(c) },
  };
  const ctx = vm.createContext(win);
  vm.runInContext(bundle, ctx);
  return { win, posted, added, requests, delays, fire, style };
}

test('in the session window\'s frame: the location, and a frame-busting page', () => {
  const w = fakeWindow({ hidden: true });
  assert.deepEqual(w.posted[0], { m: { type: 'porthole.hint', kind: 'location', path: '/status?x=1' }, origin: SHELL });
  w.win.location.pathname = '/next';
  w.win.history.pushState(null, '', '/next');
  assert.equal(w.posted.at(-1).m.path, '/next?x=1');
  w.fire('document', 'DOMContentLoaded');
  assert.deepEqual(w.posted.at(-1), { m: { type: 'porthole.hint', kind: 'framebust', reason: 'hidden' }, origin: SHELL });
  const n = w.posted.length;
  w.fire('window', 'load');
  assert.equal(w.posted.length, n, 'told once per page');
  w.fire('window', 'error', { message: 'The current window does not have permission to navigate the target frame' });
  assert.equal(w.posted.at(-1).m.reason, 'top-navigation', 'and the refused navigation, once');
  w.fire('window', 'error', { message: 'The current window does not have permission to navigate the target frame' });
  assert.equal(w.posted.length, n + 1);
  assert.equal(w.added.length, 0, 'no bar in a frame');
});

test('a refused top navigation is a frame-busting page too', () => {
  const w = fakeWindow();
  w.fire('window', 'error', { message: "Uncaught SecurityError: Failed to set a named property 'href' on 'Location': The current window does not have permission to navigate the target frame to 'https://x'." });
  assert.equal(w.posted.at(-1).m.kind, 'framebust');
  const quiet = fakeWindow();
  quiet.fire('window', 'error', { message: 'ReferenceError: x is not defined' });
  quiet.fire('document', 'DOMContentLoaded');
  quiet.fire('window', 'load');
  assert.ok(!quiet.posted.some((p) => p.m.kind === 'framebust'));
});

test('a WebSocket to another host is the native one; one to the device with no worker fails and is told about', async () => {
  const w = fakeWindow();
  const other = new w.win.WebSocket('wss://x/live');
  assert.equal(other.url, 'wss://x/live');
  assert.equal(other.constructor.name, 'NativeWebSocket');
  const ws = new w.win.WebSocket('/live');
  assert.equal(ws.url, 'wss://abcdefgh12345678.sessions.example/live');
  assert.equal(w.posted.at(-1).m.kind, 'websocket');
  assert.equal(w.win.WebSocket.OPEN, 1);
  const closed = await new Promise((resolve) => { ws.onclose = (e) => resolve(e.code); });
  assert.equal(closed, 1006);
});

test('a WebSocket to the device goes to the controlling worker with its port', () => {
  const sent = [];
  const w = fakeWindow({ worker: { postMessage: (m, ports) => sent.push({ m, ports }) } });
  const ws = new w.win.WebSocket('/ws/status?v=2', ['status.v2']);
  assert.equal(ws.readyState, 0);
  assert.equal(sent.length, 1);
  assert.deepEqual(JSON.parse(JSON.stringify(sent[0].m)), { type: 'porthole.ws', target: '/ws/status?v=2', protocols: ['status.v2'] });
  assert.equal(sent[0].ports.length, 1);
  assert.ok(!w.posted.some((p) => p.m.kind === 'websocket'));
  for (const p of sent[0].ports) p.close();
  ws.close();
});

test('a popped-out tab gets the bar, a frame of the session window, and tells nobody anything', () => {
  const w = fakeWindow({ framed: false });
  assert.equal(w.posted.length, 0);
  w.fire('document', 'DOMContentLoaded');
  assert.equal(w.added.length, 1);
  const host = w.added[0];
  assert.match(host.attrs.style, /position:fixed/);
  // The frame is in a closed shadow root: not one of window.frames.
  assert.equal(host.shadow.mode, 'closed');
  assert.equal(host.shadow.children[0].tag, 'iframe');
  assert.equal(host.shadow.children[0].src, SHELL + '/__t/bar.html');
});

test('a popped-out tab gets its bar a moment after its load event, not at it', () => {
  // The bar loads in the session window's renderer, which carries every
  // request: a click right after the load must not wait behind it.
  const w = fakeWindow({ framed: false });
  w.fire('window', 'load');
  assert.equal(w.added.length, 1);
  assert.ok(w.delays.at(-1) >= 300, `the bar waited ${w.delays.at(-1)} ms after the load event`);
});

test('a top-level device window asks the worker for a no-store answer, once; a frame does not', () => {
  // page/unstored.js: what keeps the tab out of the back-forward cache, so
  // its navigations stay in its browsing context group and renderer.
  const tab = fakeWindow({ framed: false });
  assert.deepEqual(tab.requests, [{ method: 'GET', url: '/__t/unstored' }]);
  tab.fire('document', 'DOMContentLoaded');
  tab.fire('window', 'load');
  assert.equal(tab.requests.length, 1);
  assert.deepEqual(fakeWindow().requests, [], 'the session window\'s frame');
  assert.deepEqual(fakeWindow({ parentOrigin: 'https://evil.example' }).requests, [], 'a frame of another page');
});

test('a frame inside another page is not the session window\'s frame', () => {
  for (const parentOrigin of ['https://evil.example', DEVICE]) {
    const w = fakeWindow({ parentOrigin, hidden: true });
    w.fire('document', 'DOMContentLoaded');
    assert.equal(w.posted.length, 0, parentOrigin);
  }
});

test('a link or form that leaves the device goes to the interstitial, one on the device does not', () => {
  const w = fakeWindow();
  const click = (href, extra = {}) => {
    const a = { href, target: '', hasAttribute: () => false, ...extra };
    const ev = { button: 0, defaultPrevented: false, target: { closest: () => a }, preventDefault() { this.defaultPrevented = true; } };
    w.fire('document', 'click', ev);
    return ev.defaultPrevented;
  };
  assert.equal(click(DEVICE + '/supplies'), false);
  assert.equal(click('mailto:service@example.com'), false);
  assert.equal(click('http://example.invalid/drivers?x=1'), true);
  assert.deepEqual(w.win.location.assigned, ['/__t/offsite?u=' + encodeURIComponent('http://example.invalid/drivers?x=1')]);
  assert.equal(click('http://192.168.1.20/other', { hasAttribute: (n) => n === 'download' }), false);
  const ev = { target: { getAttribute: () => '', action: 'https://vendor.example/register' }, preventDefault() { this.prevented = true; } };
  w.fire('document', 'submit', ev);
  assert.equal(ev.prevented, true);
  assert.equal(w.win.location.assigned.at(-1), '/__t/offsite?u=' + encodeURIComponent('https://vendor.example/register'));
});
