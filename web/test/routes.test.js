import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRoute, routeHash } from '../app/routes.js';

test('parseRoute gives every view and admin section its own address', () => {
  const cases = [
    ['', false, { view: 'devices', section: '', id: '' }],
    ['#devices', false, { view: 'devices', section: '', id: '' }],
    ['#jobs', false, { view: 'jobs', section: '', id: '' }],
    ['#jobs/abc123DEF_-', false, { view: 'jobs', section: '', id: 'abc123DEF_-' }],
    ['#jobs/../../x', false, { view: 'jobs', section: '', id: '' }],
    ['#account', false, { view: 'account', section: '', id: '' }],
    ['#admin', true, { view: 'admin', section: 'users', id: '' }],
    ['#admin/agents', true, { view: 'admin', section: 'agents', id: '' }],
    ['#/admin/audit', true, { view: 'admin', section: 'audit', id: '' }],
    ['#admin/nope', true, { view: 'admin', section: 'users', id: '' }],
    ['#admin/agents', false, { view: 'devices', section: '', id: '' }],
    ['#nowhere', true, { view: 'devices', section: '', id: '' }],
  ];
  for (const [hash, admin, want] of cases) assert.deepEqual(parseRoute(hash, { admin }), want, hash);
});

test('routeHash is the canonical address of a route', () => {
  assert.equal(routeHash(parseRoute('#admin', { admin: true })), '#admin/users');
  assert.equal(routeHash(parseRoute('#jobs/x1', {})), '#jobs/x1');
  assert.equal(routeHash(parseRoute('#bogus', {})), '#devices');
  for (const h of ['#devices', '#jobs', '#account', '#admin/sites', '#admin/audit']) assert.equal(routeHash(parseRoute(h, { admin: true })), h);
});

test('auditDetail reads as words', async () => {
  const { auditDetail } = await import('../app/admin.js');
  assert.equal(auditDetail({ token_by: 'cli', before: '' }), 'token by: cli; before: —');
  assert.equal(auditDetail(undefined), '');
});
