import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { en, errorText, format, has, t, useCatalog } from '../app/messages.js';

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
