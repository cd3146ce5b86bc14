// The app's decisions (app/appflow.js, used by app.js): sign-in, the
// address, the title and branding, and what a change of view clears.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { brandOf, hashExtras, mfaBody, mfaExpired, nextURL, pageTitle, signInNote, SSO_FAILURES, viewChange } from '../app/appflow.js';
import { en } from '../app/messages.js';

test('after signing in the app goes on only to its own OAuth authorization endpoint', () => {
  assert.equal(nextURL('?next=%2Foauth%2Fauthorize%3Fclient_id%3Dx'), '/oauth/authorize?client_id=x');
  for (const q of ['', '?next=', '?next=https://evil.example/oauth/authorize?x', '?next=//evil.example/oauth/authorize?', '?next=/oauth/authorize', '?next=/admin']) {
    assert.equal(nextURL(q), '', q);
  }
});

test('a password link’s secret and a failed single sign-on leave the address', () => {
  assert.deepEqual(hashExtras('#password/s3cr3t'), { secret: 's3cr3t', reason: '', take: true });
  for (const code of SSO_FAILURES) {
    const x = hashExtras(`#signin?sso=${code}`);
    assert.deepEqual(x, { secret: '', reason: `signin.sso.${code}`, take: true });
    assert.ok(en[x.reason], x.reason);
  }
  // An unknown code is taken out of the address but says nothing.
  assert.deepEqual(hashExtras('#signin?sso=<b>x</b>'), { secret: '', reason: '', take: true });
  for (const h of ['', '#devices', '#admin/users', '#jobs/x1', undefined]) assert.deepEqual(hashExtras(h), { secret: '', reason: '', take: false }, String(h));
});

test('the title names the view, then the brand', () => {
  assert.equal(pageTitle('devices', 'Acme Remote'), `${en['title.devices']} · Acme Remote`);
  assert.equal(pageTitle('signin', 'Porthole'), `${en['title.signin']} · Porthole`);
  assert.equal(pageTitle(undefined, 'Porthole'), 'Porthole');
  for (const v of ['devices', 'jobs', 'account', 'admin', 'signin', 'password']) assert.ok(en[`title.${v}`], v);
});

test('branding takes a name and a logo only as non-empty strings', () => {
  assert.deepEqual(brandOf({ name: 'Acme', logo: 'brand/logo.png' }, 'Porthole'), { name: 'Acme', logo: '/brand/logo.png' });
  assert.deepEqual(brandOf({ name: '', logo: 7 }, 'Porthole'), { name: 'Porthole', logo: '' });
  assert.deepEqual(brandOf(null, 'Porthole'), { name: 'Porthole', logo: '' });
});

test('the sign-in note: errors for single sign-on, information otherwise', () => {
  assert.deepEqual(signInNote('signin.sso.denied', ''), { level: 'error', text: en['signin.sso.denied'] });
  assert.deepEqual(signInNote('signin.ended', ''), { level: 'info', text: en['signin.ended'] });
  assert.deepEqual(signInNote('', '/oauth/authorize?x'), { level: 'info', text: en['signin.continue'] });
  assert.deepEqual(signInNote(undefined, ''), { level: 'info', text: '' });
});

test('the second step sends the code or a recovery code, and knows when to start again', () => {
  assert.deepEqual(mfaBody('tok', '123456', false), { mfaToken: 'tok', code: '123456' });
  assert.deepEqual(mfaBody('tok', 'abcd-efgh', true), { mfaToken: 'tok', recoveryCode: 'abcd-efgh' });
  assert.equal(mfaExpired({ status: 401, message: 'mfa token expired: start again' }), true);
  assert.equal(mfaExpired({ status: 401, message: 'wrong code' }), false);
  assert.equal(mfaExpired({ status: 429, message: 'start again later' }), false);
  assert.equal(mfaExpired(undefined), false);
});

test('a change of view: canonical address, what is left, where focus goes', () => {
  // After signing in (no last view): nothing moved, the old addresses become canonical.
  let c = viewChange('#admin', true, '');
  assert.deepEqual(c.route, { view: 'admin', section: 'users', id: '' });
  assert.deepEqual([c.canonical, c.replace, c.key, c.leave, c.moved], ['#admin/users', true, 'admin/users', true, false]);
  // A non-admin asking for admin gets the devices, at their own address.
  c = viewChange('#admin/agents', false, 'devices/');
  assert.deepEqual([c.route.view, c.canonical, c.replace, c.leave, c.moved], ['devices', '#devices', true, false, false]);
  // The same view again (a reload of the hash): nothing is cleared.
  c = viewChange('#jobs', false, 'jobs/');
  assert.deepEqual([c.replace, c.leave, c.moved], [false, false, false]);
  // A job's own address is the jobs view: opening one does not leave the list.
  c = viewChange('#jobs/abc', false, 'jobs/');
  assert.deepEqual([c.route.id, c.replace, c.leave, c.moved], ['abc', false, false, false]);
  // Another admin section is another view: notes cleared, focus moves.
  c = viewChange('#admin/audit', true, 'admin/users');
  assert.deepEqual([c.key, c.replace, c.leave, c.moved], ['admin/audit', false, true, true]);
  c = viewChange('', false, 'account/');
  assert.deepEqual([c.route.view, c.canonical, c.replace, c.leave, c.moved], ['devices', '#devices', true, true, true]);
});

test('app.js leaves these decisions to appflow.js', () => {
  const src = readFileSync(new URL('../app/app.js', import.meta.url), 'utf8');
  for (const name of ['viewChange', 'hashExtras', 'signInNote', 'mfaBody', 'mfaExpired', 'brandOf', 'pageTitle']) {
    assert.match(src, new RegExp(`\\b${name}\\(`), name);
  }
  assert.doesNotMatch(src, /parseRoute\(|routeHash\(|'#password\/'/);
});
