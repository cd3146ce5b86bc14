import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { en, errorText, format, has, t, useCatalog } from '../app/messages.js';
import * as session from '../session/messages.js';

const here = new URL('.', import.meta.url);
const read = (p) => readFileSync(new URL(p, here), 'utf8');
const appJS = readdirSync(new URL('../app/', here))
  .filter((f) => f.endsWith('.js'))
  .map((f) => [f, read(`../app/${f}`)]);

test('every key index.html names is in the catalog', () => {
  const html = read('../app/index.html');
  const keys = [...html.matchAll(/data-msg="([^"]+)"/g)].map((m) => m[1]);
  for (const m of html.matchAll(/data-msg-attr="([^"]+)"/g)) for (const pair of m[1].split(';')) keys.push(pair.split(':')[1].trim());
  assert.ok(keys.length > 150, `only ${keys.length} keys found`);
  for (const k of keys) assert.ok(has(k), `index.html names ${k}, which the catalog lacks`);
});

test('index.html holds no text of its own: all of it comes from the catalog', () => {
  const html = read('../app/index.html')
    .replace(/<title>[^<]*<\/title>/, '')
    .replace(/<!doctype[^>]*>/i, '')
    .replace(/<[^>]+>/g, '\n');
  const text = html.split('\n').map((s) => s.trim()).filter(Boolean);
  assert.deepEqual(text, []);
});

test('every key the app code names is in the catalog', () => {
  let n = 0;
  for (const [file, src] of appJS) {
    for (const m of src.matchAll(/\bt\('([a-zA-Z0-9_.]+)'/g)) {
      n++;
      // t() with a count picks key.one / key.other.
      assert.ok(has(m[1]) || (has(`${m[1]}.one`) && has(`${m[1]}.other`)), `${file}: t('${m[1]}') is not in the catalog`);
    }
    for (const m of src.matchAll(/errorText\('([a-zA-Z0-9_.]+)'/g)) {
      n++;
      assert.ok(has(`action.${m[1]}`), `${file}: errorText('${m[1]}') has no action.${m[1]}`);
    }
    for (const m of src.matchAll(/'((?:devices|admin|account|jobs|health|signin)\.[a-zA-Z0-9_.]+)'/g)) {
      if (!src.includes(`t(${m[0]}`) && /\.(why|empty|access)\./.test(m[1])) assert.ok(has(m[1]), `${file}: '${m[1]}' is not in the catalog`);
    }
  }
  assert.ok(n > 100, `only ${n} uses found`);
});

test('every error code of proto/errors.go has a sentence', () => {
  const src = read('../../proto/errors.go');
  const codes = [...src.matchAll(/Code\s*=\s*"([a-z_]+)"/g)].map((m) => m[1]);
  assert.ok(codes.includes('bad_message') && codes.includes('exists'), codes.join(' '));
  for (const c of codes) assert.ok(has(`err.${c}`), `no err.${c}`);
});

test('every end reason the Jobs filter offers reads as words', () => {
  const html = read('../app/index.html');
  const select = html.match(/<select id="jf-reason">(.*?)<\/select>/s)[1];
  for (const m of select.matchAll(/value="([a-z_]+)"/g)) assert.ok(has(`jobs.reason.${m[1]}`), m[1]);
});

test('format and plural forms', () => {
  assert.equal(format('Hello {name}, {n}', { name: 'Ann' }), 'Hello Ann, {n}');
  assert.equal(t('devices.count', { count: 1 }), '1 device');
  assert.equal(t('devices.count', { count: 3 }), '3 devices');
  assert.equal(t('devices.count', { count: 0 }), '0 devices');
  assert.equal(t('no.such.key'), 'no.such.key');
});

test('errorText says what failed and why in words, never the code or the server text', () => {
  const dup = { status: 409, code: 'exists', message: 'already exists' };
  assert.equal(errorText('site.create', dup), 'Could not create the site. A site with this name exists already; choose another name.');
  assert.equal(errorText('user.update', { status: 400, code: 'bad_message', message: 'admins cannot demote or disable themselves' }, { name: 'ann' }), 'Could not change ann. Administrators cannot disable or demote themselves.');
  assert.equal(errorText('login', { status: 401, code: 'unauthorized', message: 'wrong user name or password' }), 'Could not sign in. The user name or password is wrong.');
  assert.equal(errorText('devices.load', { status: 0, code: 'network', message: 'Failed to fetch' }), 'Could not load the devices. The server did not answer. Check your connection and try again.');
  assert.equal(errorText('devices.load', { status: 502, code: 'http_502' }), 'Could not load the devices. Something went wrong; the server answered with status 502. Try again, and if it keeps happening, tell your administrator.');
  const codes = Object.keys(en).filter((k) => /^err\.[a-z_]+$/.test(k)).map((k) => k.slice(4));
  for (const code of codes) {
    const s = errorText('site.create', { status: 400, code, message: 'request body: json: cannot unmarshal string into Go value' });
    // Codes with an underscore are never words; none shows in parentheses.
    assert.doesNotMatch(s, /json:|Go value|\(|\)|\b[a-z]+_[a-z_]+\b/, `${code}: ${s}`);
  }
});

test('a translation replaces texts and falls back to English for the rest', () => {
  useCatalog({ 'devices.open': 'Öffnen', 'devices.count.one': '{count} Gerät', 'devices.count.other': '{count} Geräte' }, 'de');
  try {
    assert.equal(t('devices.open'), 'Öffnen');
    assert.equal(t('devices.count', { count: 2 }), '2 Geräte');
    assert.equal(t('devices.heading'), 'Devices');
  } finally {
    useCatalog({}, 'en');
  }
});

// The session window's catalog (web/session/messages.js): the same shape,
// read by Go too (web/messages.go), so every line of its en object has the
// one form Go reads.
const sessionDir = new URL('../session/', here);
const sessionJS = [
  ...readdirSync(sessionDir).filter((f) => f.endsWith('.js')).map((f) => [f, read(`../session/${f}`)]),
  ...readdirSync(new URL('page/', sessionDir)).filter((f) => f.endsWith('.js')).map((f) => [`page/${f}`, read(`../session/page/${f}`)]),
];
const sessionHTML = readdirSync(sessionDir).filter((f) => f.endsWith('.html')).map((f) => [f, read(`../session/${f}`)]);

test('session catalog: every line of en has the form Go reads, and Go reads the same object', () => {
  const src = read('../session/messages.js');
  const body = src.split('\nexport const en = {\n')[1].split('\n};\n')[0];
  const line = /^'([A-Za-z0-9_.]+)': '((?:[^'\\]|\\')*)',$/;
  const parsed = {};
  for (const raw of body.split('\n')) {
    const l = raw.trim();
    if (!l || l.startsWith('//')) continue;
    const m = line.exec(l);
    assert.ok(m, `messages.js: ${l}`);
    assert.ok(!Object.hasOwn(parsed, m[1]), `twice: ${m[1]}`);
    parsed[m[1]] = m[2].replaceAll("\\'", "'");
  }
  assert.deepEqual(parsed, session.en);
});

test('session catalog: every key the session code and pages name exists', () => {
  let n = 0;
  for (const [file, src] of sessionJS) {
    for (const m of src.matchAll(/\bt\('([a-zA-Z0-9_.]+)'/g)) {
      n++;
      const k = m[1];
      assert.ok(session.has(k) || (session.has(`${k}.one`) && session.has(`${k}.other`)), `${file}: t('${k}') is not in the session catalog`);
    }
  }
  for (const [file, src] of sessionHTML) {
    for (const m of src.matchAll(/\{\{msg "([^"]+)"/g)) {
      n++;
      assert.ok(session.has(m[1]), `${file}: msg "${m[1]}" is not in the session catalog`);
    }
  }
  // Keys chosen in code (a ternary, a map) are quoted strings of the catalog's prefixes.
  const prefixes = [...new Set(Object.keys(session.en).map((k) => k.split('.')[0]))].join('|');
  const quoted = new RegExp(`'((?:${prefixes})\\.[a-zA-Z0-9_.]+)'`, 'g');
  for (const [file, src] of sessionJS) {
    if (file === 'messages.js') continue;
    for (const m of src.matchAll(quoted)) {
      n++;
      assert.ok(session.has(m[1]) || (session.has(`${m[1]}.one`) && session.has(`${m[1]}.other`)), `${file}: '${m[1]}' is not in the session catalog`);
    }
  }
  // shellflow.js names end reasons by the set it knows: each has its sentence.
  const reasons = read('../session/shellflow.js').match(/const END_REASONS = new Set\(\[([^\]]*)\]\)/)[1];
  for (const m of reasons.matchAll(/'([a-z_]+)'/g)) assert.ok(session.has(`end.${m[1]}`), `no end.${m[1]}`);
  // The page shim, a classic script, reads the texts web.go puts into its bundle (shimMessages).
  const shimKeys = JSON.parse('[' + /var shimMessages = \[\]string\{([^}]*)\}/.exec(read('../web.go'))[1] + ']');
  for (const [file, src] of sessionJS.filter(([f]) => f.startsWith('page/'))) {
    for (const m of src.matchAll(/\bTEXT\['([^']+)'\]/g)) {
      n++;
      assert.ok(session.has(m[1]) && shimKeys.includes(m[1]), `${file}: TEXT['${m[1]}'] is not in shimMessages or the catalog`);
    }
  }
  assert.ok(n > 100, `only ${n} uses found`);
});

test('the session HTML files hold no text of their own: all of it comes from the catalog', () => {
  for (const [file, src] of sessionHTML) {
    const rest = src
      .replace(/<!doctype[^>]*>/i, '')
      .replace(/<code>[^<]*<\/code>/g, '') // codes are for support, not words
      .replace(/\{\{[^}]*\}\}/g, '\n')
      .replace(/<[^>]+>/g, '\n');
    // Parentheses around a link are all that may stay.
    const text = rest.split('\n').map((s) => s.trim()).filter((s) => /\p{L}/u.test(s));
    assert.deepEqual(text, [], file);
  }
});

test('session catalog: format, plural forms and a translation', () => {
  assert.equal(session.t('recovery.restored', { count: 1, seconds: '4.3' }), 'Connection to the agent restored after 4.3 s (1 ICE restart).');
  assert.equal(session.t('recovery.restored', { count: 3, seconds: '13' }), 'Connection to the agent restored after 13 s (3 ICE restarts).');
  assert.equal(session.t('no.such.key'), 'no.such.key');
  session.useCatalog({ 'toolbar.end': 'Sitzung beenden' }, 'de');
  try {
    assert.equal(session.t('toolbar.end'), 'Sitzung beenden');
    assert.equal(session.t('toolbar.closed'), 'closed');
  } finally {
    session.useCatalog({}, 'en');
  }
});
