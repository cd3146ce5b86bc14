// Webhooks: a site's signed notifications (issue 18), for admins and the
// site's site admins. Add an endpoint and see its secret once, send a test
// event, read the delivery log (status, attempts, last error), remove it.
// The pure parts (which sites, the request body, a delivery in words) are
// exported for the node tests.

import { errorText, t } from './messages.js';
import { $, api, busy, el, emptyState, note, when } from './ui.js';

/** The event types a subscription can filter on (proto.WebhookTypes). */
export const WEBHOOK_EVENTS = [
  'session.requested',
  'session.approved',
  'session.denied',
  'session.expired',
  'session.started',
  'session.ended',
  'session.terminated',
  'policy.refused',
];

/**
 * webhookSites(me, sites) → the sites whose webhooks me manages: every
 * site for an admin, else those where me is a site admin.
 */
export function webhookSites(me, sites) {
  if (!Array.isArray(sites)) return [];
  if (me?.admin) return sites;
  return sites.filter((s) => Array.isArray(s.roles) && s.roles.includes('siteadmin'));
}

/** mayManageWebhooks(me) → whether the Webhooks view is for me. */
export function mayManageWebhooks(me) {
  if (me?.admin) return true;
  return Object.values(me?.roles || {}).some((r) => Array.isArray(r) && r.includes('siteadmin'));
}

/** newWebhookRequest(url, checked types) → the body of POST …/webhooks (no types: all). */
export function newWebhookRequest(url, types) {
  const body = { url: String(url || '').trim() };
  const events = (types || []).filter((e) => WEBHOOK_EVENTS.includes(e));
  if (events.length && events.length < WEBHOOK_EVENTS.length) body.events = events;
  return body;
}

/** deliveryView(d) → {kind, status, detail}: a delivery of the log in words. */
export function deliveryView(d) {
  const kind = d?.status === 'delivered' ? 'ok' : d?.status === 'failed' ? 'bad' : 'unknown';
  const status = t(`webhooks.status.${['delivered', 'failed'].includes(d?.status) ? d.status : 'pending'}`);
  const parts = [t('webhooks.attempts', { count: d?.attempts || 0 })];
  if (d?.code) parts.push(t('webhooks.code', { code: d.code }));
  if (d?.lastError) parts.push(d.lastError);
  return { kind, status, detail: parts.join(' · ') };
}

let site = '';
let sitesCache = [];
let shown = ''; // the subscription whose log is open

const base = () => `/v1/sites/${encodeURIComponent(site)}/webhooks`;

/** showWebhooks(me): load the sites me manages, then the chosen one's webhooks. */
export async function showWebhooks(me) {
  try {
    sitesCache = webhookSites(me, (await api('GET', '/v1/sites')).sites);
  } catch (err) {
    note('webhooks', 'error', errorText('webhooks.load', err));
    return;
  }
  const select = /** @type {HTMLSelectElement} */ ($('webhook-site'));
  select.replaceChildren(...sitesCache.map((s) => el('option', { value: s.id, textContent: s.name || s.id })));
  $('webhook-none').hidden = sitesCache.length > 0;
  $('webhook-body').hidden = sitesCache.length === 0;
  if (!sitesCache.some((s) => s.id === site)) site = sitesCache[0]?.id || '';
  select.value = site;
  if (site) await loadWebhooks();
}

/** leaveWebhooks: the secret shown once does not stay on the page. */
export function leaveWebhooks() {
  $('webhook-secret').hidden = true;
  $('webhook-secret-value').textContent = '';
  shown = '';
}

async function loadWebhooks() {
  let list;
  try {
    list = (await api('GET', base())).webhooks || [];
  } catch (err) {
    note('webhooks', 'error', errorText('webhooks.load', err));
    return;
  }
  const rows = $('webhook-rows');
  rows.replaceChildren(...list.map(row));
  $('webhook-empty').replaceChildren(...(list.length ? [] : [emptyState('webhooks.empty.title', 'webhooks.empty.body')]));
  $('webhook-table').hidden = list.length === 0;
  if (shown && !list.some((w) => w.id === shown)) {
    shown = '';
    $('webhook-log').hidden = true;
  }
  if (shown) await loadLog(shown);
}

function row(w) {
  const test = el('button', { type: 'button', className: 'secondary', textContent: t('webhooks.test'), dataset: { focus: 'test' } });
  const log = el('button', { type: 'button', className: 'secondary', textContent: t('webhooks.log'), dataset: { focus: 'log' } });
  const del = el('button', { type: 'button', className: 'secondary', textContent: t('webhooks.delete'), dataset: { focus: 'delete' } });
  test.addEventListener('click', () =>
    busy(test, async () => {
      try {
        await api('POST', `${base()}/${encodeURIComponent(w.id)}/test`);
        note('webhooks', 'ok', t('webhooks.testSent', { url: w.url }));
        shown = w.id;
        setTimeout(() => loadLog(w.id), 1500);
      } catch (err) {
        note('webhooks', 'error', errorText('webhook.test', err));
      }
    }),
  );
  log.addEventListener('click', () => {
    shown = w.id;
    loadLog(w.id);
  });
  del.addEventListener('click', () =>
    busy(del, async () => {
      if (!confirm(t('webhooks.deleteConfirm', { url: w.url }))) return;
      try {
        await api('DELETE', `${base()}/${encodeURIComponent(w.id)}`);
        note('webhooks', 'ok', t('webhooks.deleted', { url: w.url }));
        await loadWebhooks();
      } catch (err) {
        note('webhooks', 'error', errorText('webhook.delete', err));
      }
    }),
  );
  const events = w.events?.length ? w.events.join(', ') : t('webhooks.allEvents');
  return el(
    'tr',
    { dataset: { webhook: w.id } },
    el('td', {}, el('code', { textContent: w.url })),
    el('td', { textContent: events }),
    el('td', { textContent: when(w.created) }),
    el('td', { className: 'ph-actions' }, test, log, del),
  );
}

async function loadLog(id) {
  let list;
  try {
    list = (await api('GET', `${base()}/${encodeURIComponent(id)}/deliveries`)).deliveries || [];
  } catch (err) {
    note('webhooks', 'error', errorText('webhook.log', err));
    return;
  }
  if (shown !== id) return;
  $('webhook-log').hidden = false;
  $('webhook-log-empty').hidden = list.length > 0;
  $('delivery-rows').replaceChildren(
    ...list.map((d) => {
      const v = deliveryView(d);
      return el(
        'tr',
        { dataset: { delivery: d.id, status: d.status } },
        el('td', { textContent: when(d.updated || d.created) }),
        el('td', { textContent: d.event }),
        el('td', {}, el('span', { className: `ph-state ${v.kind}`, textContent: v.status })),
        el('td', { textContent: v.detail }),
        el('td', {}, el('code', { textContent: d.id })),
      );
    }),
  );
}

/** setupWebhooks: the site picker, the add form and the secret box. */
export function setupWebhooks() {
  $('webhook-events').replaceChildren(
    ...WEBHOOK_EVENTS.map((e) =>
      el('label', {}, el('input', { type: 'checkbox', value: e, attrs: { name: 'webhook-event' } }), ' ', el('code', { textContent: e })),
    ),
  );
  $('webhook-site').addEventListener('change', (e) => {
    site = /** @type {HTMLSelectElement} */ (e.target).value;
    leaveWebhooks();
    $('webhook-log').hidden = true;
    loadWebhooks();
  });
  $('webhook-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    note('webhook-form', '', '');
    const types = [...document.querySelectorAll('input[name="webhook-event"]:checked')].map((i) => /** @type {HTMLInputElement} */ (i).value);
    const body = newWebhookRequest(/** @type {HTMLInputElement} */ ($('webhook-url')).value, types);
    await busy(e.submitter || $('webhook-submit'), async () => {
      try {
        const res = await api('POST', base(), body);
        /** @type {HTMLFormElement} */ ($('webhook-form')).reset();
        $('webhook-secret-value').textContent = res.secret;
        $('webhook-secret').hidden = false;
        note('webhook-form', 'ok', t('webhooks.created', { url: res.url }));
        await loadWebhooks();
      } catch (err) {
        note('webhook-form', 'error', errorText('webhook.create', err));
      }
    });
  });
  $('webhook-secret-copy').addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText($('webhook-secret-value').textContent);
      note('webhook-secret', 'ok', t('webhooks.copied'));
    } catch {
      note('webhook-secret', 'error', t('webhooks.copyFailed'));
    }
  });
  $('webhook-secret-done').addEventListener('click', leaveWebhooks);
}
