import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { WEBHOOK_EVENTS, deliveryView, mayManageWebhooks, newWebhookRequest, webhookSites } from '../app/webhooks.js';

test('the webhook event types are proto.WebhookTypes', () => {
  const src = readFileSync(new URL('../../proto/webhook.go', import.meta.url), 'utf8');
  const types = [...src.matchAll(/Webhook\w+\s*=\s*"([a-z.]+)"/g)].map((m) => m[1]);
  assert.deepEqual(WEBHOOK_EVENTS, types);
});

test('admins manage every site, site admins their own', () => {
  const sites = [
    { id: 'a', roles: ['siteadmin'] },
    { id: 'b', roles: ['configurer'] },
    { id: 'c' },
  ];
  assert.deepEqual(webhookSites({ admin: true }, sites).map((s) => s.id), ['a', 'b', 'c']);
  assert.deepEqual(webhookSites({ admin: false }, sites).map((s) => s.id), ['a']);
  assert.deepEqual(webhookSites({}, null), []);
  assert.equal(mayManageWebhooks({ admin: true }), true);
  assert.equal(mayManageWebhooks({ roles: { a: ['user'], b: ['siteadmin'] } }), true);
  assert.equal(mayManageWebhooks({ roles: { a: ['configurer', 'user'] } }), false);
  assert.equal(mayManageWebhooks(null), false);
});

test('newWebhookRequest sends a filter only when it filters', () => {
  assert.deepEqual(newWebhookRequest(' https://h.example/x ', []), { url: 'https://h.example/x' });
  assert.deepEqual(newWebhookRequest('https://h', ['session.started', 'bogus']), { url: 'https://h', events: ['session.started'] });
  assert.deepEqual(newWebhookRequest('https://h', [...WEBHOOK_EVENTS]), { url: 'https://h' });
});

test('a delivery reads as words', () => {
  assert.deepEqual(deliveryView({ status: 'delivered', attempts: 2, code: 200 }), { kind: 'ok', status: 'Delivered', detail: '2 attempts · HTTP 200' });
  assert.deepEqual(deliveryView({ status: 'failed', attempts: 1, lastError: 'webhook: destination address refused' }), {
    kind: 'bad',
    status: 'Failed',
    detail: '1 attempt · webhook: destination address refused',
  });
  assert.equal(deliveryView({ status: 'pending', attempts: 3, code: 503 }).status, 'Retrying');
});
