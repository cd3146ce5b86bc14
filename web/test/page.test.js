// The page shim (web/session/page/), bundled as web.go bundles it and run
// in a fake window: what it tells the session window, and what it adds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join, dirname } from 'node:path';
import vm from 'node:vm';

const here = dirname(fileURLToPath(import.meta.url));
const parts = JSON.parse(
  '[' + /var pageParts = \[\]string\{([^}]*)\}/.exec(readFileSync(join(here, '../web.go'), 'utf8'))[1] + ']',
);
const bundle = '(function () {\n\'use strict\';\n' +
  parts.map((p) => readFileSync(join(here, '../session/page', p), 'utf8')).join('\n') + '\n})();';

const DEVICE = 'https://abcdefgh12345678.sessions.example';
const SHELL = 'https://shell-abcdefgh12345678.sessions.example';

/** A window just good enough for the shim. */
function fakeWindow({ framed = true, parentOrigin = SHELL, hidden = false } = {}) {
  const listeners = {};
  const posted = [];
  const added = [];
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
    location: { protocol: 'https:', host: 'abcdefgh12345678.sessions.example', pathname: '/status', search: '?x=1', hash: '',
      ancestorOrigins: framed ? [parentOrigin] : [] },
    history: { pushState() {}, replaceState() {} },
    addEventListener: on('window'),
    setTimeout: (fn) => fn(),
    getComputedStyle: () => style,
    WebSocket: function NativeWebSocket(url) { this.url = url; },
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
  return { win, posted, added, fire, style };
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

test('a WebSocket the page opens is told about, and still made', () => {
  const w = fakeWindow();
  const ws = new w.win.WebSocket('wss://x/live');
  assert.equal(ws.url, 'wss://x/live');
  assert.equal(w.posted.at(-1).m.kind, 'websocket');
  assert.equal(w.win.WebSocket.OPEN, 1);
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

test('a frame inside another page is not the session window\'s frame', () => {
  for (const parentOrigin of ['https://evil.example', DEVICE]) {
    const w = fakeWindow({ parentOrigin, hidden: true });
    w.fire('document', 'DOMContentLoaded');
    assert.equal(w.posted.length, 0, parentOrigin);
  }
});
