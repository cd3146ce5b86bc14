// The site view (#site), the customer's own: for site admins, the live
// requests of technicians to approve or deny with a comment, the live
// sessions on their sites with End, and the policies of each site and its
// devices (approval, time windows, read-only, path rules, ports). It polls
// every few seconds; the policy forms load once, so an edit is never
// overwritten by a refresh.

import { errorText, t } from './messages.js';
import { formatWindows, parseList, parsePorts, parseWindows } from './policytext.js';
import { $, api, busy, clock, el, note, noteSlot, reconcile, when } from './ui.js';

const POLL_EVERY = 3_000;
let timer = null;
let sites = [];

/** adminSites(me) → the IDs of the sites me administers for the customer. */
export function adminSites(me) {
  return Object.entries(me?.roles || {})
    .filter(([, roles]) => (roles || []).includes('siteadmin'))
    .map(([site]) => site)
    .sort();
}

export function showSite(me) {
  sites = adminSites(me);
  leaveSite();
  $('site-empty').hidden = sites.length > 0;
  refresh();
  loadPolicies();
  timer = setInterval(refresh, POLL_EVERY);
}

export function leaveSite() {
  clearInterval(timer);
  timer = null;
}

async function refresh() {
  try {
    const [reqs, jobs, audit] = await Promise.all([api('GET', '/v1/requests'), api('GET', '/v1/jobs?limit=200'), api('GET', '/v1/audit')]);
    const mine = (x) => sites.includes(x.site);
    renderRequests((reqs.requests || []).filter(mine));
    renderSessions((jobs.jobs || []).filter((j) => j.live && mine(j)));
    renderChanges((audit.entries || []).filter(mine).slice(-30).reverse());
    note('site', '', '');
  } catch (err) {
    if (err.status !== 401) note('site', 'error', errorText('site.load', err));
  }
}

// ---- requests ----

function renderRequests(list) {
  const pending = list.filter((r) => r.state === 'pending');
  const answered = list.filter((r) => r.state !== 'pending').slice(0, 20);
  $('requests-none').hidden = pending.length > 0;
  reconcile($('requests-pending'), pending, (r) => r.id, (r) => JSON.stringify([r.state, r.canDecide]), requestItem);
  reconcile($('requests-answered'), answered, (r) => r.id, (r) => JSON.stringify([r.state, r.comment]), answeredItem);
}

function who(r) {
  return { user: r.userName || r.user, device: r.deviceName || r.device, site: r.siteName || r.site, minutes: r.minutes };
}

function requestItem(r) {
  const commentId = `comment-${r.id}`;
  const comment = el('input', { id: commentId, className: 'decision-comment', maxLength: 500, dataset: { focus: 'comment' }, attrs: { 'aria-label': t('site.request.comment') } });
  const decide = async (approve, button) => {
    await busy(button, async () => {
      try {
        const v = await api('POST', `/v1/requests/${encodeURIComponent(r.id)}/decide`, { approve, comment: comment.value });
        note('site', 'ok', t(approve ? 'site.request.approved' : 'site.request.denied', who(v)));
        refresh();
      } catch (err) {
        note(`request:${r.id}`, 'error', errorText('request.decide', err));
      }
    });
  };
  const approve = el('button', { type: 'button', className: 'approve', textContent: t('site.request.approve'), dataset: { focus: 'approve' } });
  const deny = el('button', { type: 'button', className: 'deny secondary', textContent: t('site.request.deny'), dataset: { focus: 'deny' } });
  approve.addEventListener('click', () => decide(true, approve));
  deny.addEventListener('click', () => decide(false, deny));
  return el(
    'li',
    { className: 'request', dataset: { request: r.id, device: r.device } },
    el('p', { className: 'request-who', textContent: t('site.request.who', who(r)) }),
    el('p', { className: 'request-reason', textContent: t('site.request.reason', { reason: r.reason }) }),
    el('p', { className: 'muted', textContent: t('site.request.expires', { time: clock(r.expires) }) }),
    r.canDecide
      ? el('div', { className: 'request-actions' }, el('label', { htmlFor: commentId, textContent: t('site.request.comment') }), comment, approve, deny)
      : el('p', { className: 'muted', textContent: t('site.request.notYours') }),
    noteSlot(`request:${r.id}`),
  );
}

function answeredItem(r) {
  const p = { ...who(r), by: r.deciderName || r.decidedBy || '', comment: r.comment || '' };
  return el(
    'li',
    { className: 'request answered', dataset: { request: r.id, state: r.state } },
    el('span', { className: `badge state-${r.state}`, textContent: t(`site.state.${r.state}`) }),
    ' ',
    el('span', { textContent: t('site.request.who', p) }),
    r.comment ? el('span', { className: 'muted', textContent: ` — ${t('site.request.commented', p)}` }) : null,
  );
}

// ---- live sessions ----

function renderSessions(list) {
  $('sessions-none').hidden = list.length > 0;
  reconcile($('site-sessions'), list, (j) => j.id, (j) => JSON.stringify([j.state, j.path]), sessionItem);
}

function sessionItem(j) {
  const end = el('button', { type: 'button', className: 'end-session secondary', textContent: t('site.session.end'), dataset: { focus: 'end' } });
  end.addEventListener('click', () =>
    busy(end, async () => {
      try {
        await api('POST', `/v1/jobs/${encodeURIComponent(j.id)}/terminate`);
        note('site', 'ok', t('site.session.ended', { device: j.deviceName || j.device, user: j.userName || j.user }));
        refresh();
      } catch (err) {
        note(`session:${j.id}`, 'error', errorText('session.end', err));
      }
    }),
  );
  const approval = j.approvedBy ? t('site.session.approval', { by: j.approvedByName || j.approvedBy, reason: j.approvalReason || '' }) : t('site.session.noApproval');
  return el(
    'li',
    { className: 'site-session', dataset: { job: j.id } },
    el('p', { textContent: t('site.session.who', { user: j.userName || j.user, device: j.deviceName || j.device, site: j.siteName || j.site }) }),
    el('p', { className: 'muted', textContent: t('site.session.since', { start: when(j.start), until: clock(j.expires) }) }),
    el('p', { className: 'muted', textContent: approval }),
    end,
    noteSlot(`session:${j.id}`),
  );
}

// ---- recent changes (the admin log's entries of the admin's sites) ----

const CHANGE_KEYS = ['device', 'reason', 'comment', 'before', 'after'];

function renderChanges(list) {
  $('changes-none').hidden = list.length > 0;
  reconcile($('site-changes'), list, (e) => String(e.seq), (e) => e.hash, changeItem);
}

function changeItem(e) {
  // Only what a customer reads: the policy before and after, the device,
  // the reason and the comment.
  const detail = CHANGE_KEYS.filter((k) => e.detail?.[k])
    .map((k) => t(`site.change.${k}`, { value: e.detail[k] }))
    .join(' · ');
  return el(
    'li',
    { className: 'site-change', dataset: { action: e.action } },
    el('time', { className: 'muted', textContent: when(e.time) }),
    ' ',
    el('strong', { textContent: e.action }),
    ' ',
    el('span', { textContent: t('site.change.by', { actor: e.actor, target: e.target || '' }) }),
    detail ? el('p', { className: 'muted change-detail', textContent: detail }) : null,
  );
}

// ---- policies ----

async function loadPolicies() {
  const box = $('policies');
  box.replaceChildren();
  let ov;
  try {
    ov = await api('GET', '/v1/overview');
  } catch (err) {
    note('site', 'error', errorText('site.load', err));
    return;
  }
  for (const site of (ov.sites || []).filter((s) => sites.includes(s.id))) {
    let sp = {};
    try {
      sp = await api('GET', `/v1/sites/${encodeURIComponent(site.id)}/policy`);
    } catch (err) {
      note('site', 'error', errorText('site.load', err));
    }
    const devices = [];
    for (const d of site.devices || []) {
      try {
        devices.push([d, await api('GET', `/v1/devices/${encodeURIComponent(d.id)}/policy?agent=${encodeURIComponent(d.agent)}`)]);
      } catch {
        devices.push([d, {}]);
      }
    }
    box.append(sitePolicyForm(site, sp, devices));
  }
}

function field(id, labelKey, input) {
  input.id = id;
  return el('div', {}, el('label', { htmlFor: id, textContent: t(labelKey) }), input);
}

function check(id, labelKey, checked) {
  const box = el('input', { type: 'checkbox', id, checked: !!checked });
  return [box, el('label', { className: 'inline', htmlFor: id }, box, el('span', { textContent: t(labelKey) }))];
}

function sitePolicyForm(site, sp, devices) {
  const key = `policy:${site.id}`;
  const [approval, approvalLabel] = check(`sp-approval-${site.id}`, 'site.policy.approval', sp.requireApproval);
  const zone = el('input', { value: sp.timeZone || '', placeholder: 'Europe/Berlin', attrs: { list: 'time-zones' } });
  const windows = el('textarea', { value: formatWindows(sp.windows), rows: 3, placeholder: 'mon tue wed thu fri 08:00-18:00' });
  const save = el('button', { type: 'submit', textContent: t('site.policy.save') });
  const form = el(
    'form',
    { className: 'site-policy ph-grid-form', dataset: { site: site.id } },
    el('div', { className: 'ph-span' }, approvalLabel),
    field(`sp-zone-${site.id}`, 'site.policy.zone', zone),
    field(`sp-windows-${site.id}`, 'site.policy.windows', windows),
    el('p', { className: 'muted ph-span', textContent: t('site.policy.windowsHint') }),
    el('div', { className: 'ph-actions' }, save),
    noteSlot(key),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(save, async () => {
      let w;
      try {
        w = parseWindows(windows.value);
      } catch (err) {
        note(key, 'error', t('site.policy.badWindow', { line: err.message }));
        return;
      }
      try {
        await api('PUT', `/v1/sites/${encodeURIComponent(site.id)}/policy`, { requireApproval: approval.checked, timeZone: zone.value.trim(), windows: w });
        note(key, 'ok', t('site.policy.saved', { site: site.name || site.id }));
      } catch (err) {
        note(key, 'error', errorText('policy.save', err));
      }
    });
  });
  return el(
    'section',
    { className: 'policy-site', dataset: { site: site.id } },
    el('h3', { textContent: t('site.policy.siteHeading', { site: site.name || site.id }) }),
    form,
    el('ul', { className: 'policy-devices', attrs: { role: 'list' } }, ...devices.map(([d, dp]) => devicePolicyForm(d, dp))),
  );
}

function devicePolicyForm(d, dp) {
  const id = `${d.agent}-${d.id}`;
  const key = `policy:${id}`;
  const [approval, approvalLabel] = check(`dp-approval-${id}`, 'site.policy.approval', dp.requireApproval);
  const [readOnly, readOnlyLabel] = check(`dp-readonly-${id}`, 'site.policy.readOnly', dp.readOnly);
  const allow = el('input', { value: (dp.allow || []).join(', '), placeholder: '/' });
  const deny = el('input', { value: (dp.deny || []).join(', '), placeholder: '/firmware' });
  const ports = el('input', { value: (dp.ports || []).join(', '), placeholder: '80, 443' });
  const save = el('button', { type: 'submit', className: 'secondary', textContent: t('site.policy.save') });
  const form = el(
    'form',
    { className: 'device-policy ph-grid-form', dataset: { device: d.id } },
    el('div', { className: 'ph-span' }, approvalLabel, readOnlyLabel),
    field(`dp-allow-${id}`, 'site.policy.allow', allow),
    field(`dp-deny-${id}`, 'site.policy.deny', deny),
    field(`dp-ports-${id}`, 'site.policy.ports', ports),
    el('div', { className: 'ph-actions' }, save),
    noteSlot(key),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(save, async () => {
      let p;
      try {
        p = parsePorts(ports.value);
      } catch (err) {
        note(key, 'error', t('site.policy.badPort', { port: err.message }));
        return;
      }
      try {
        await api('PUT', `/v1/devices/${encodeURIComponent(d.id)}/policy?agent=${encodeURIComponent(d.agent)}`, {
          requireApproval: approval.checked,
          readOnly: readOnly.checked,
          allow: parseList(allow.value),
          deny: parseList(deny.value),
          ports: p,
        });
        note(key, 'ok', t('site.policy.saved', { site: d.name || d.id }));
      } catch (err) {
        note(key, 'error', errorText('policy.save', err));
      }
    });
  });
  return el('li', { className: 'policy-device', dataset: { device: d.id } }, el('h4', { textContent: d.name || d.id }), form);
}
