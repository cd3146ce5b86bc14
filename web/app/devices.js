// The Devices view: the devices of the caller's sites, grouped by site
// (the customer), each with its status in words, the "Remote access"
// switch for configurers and Open for technicians. It refreshes every few
// seconds in place: rows that did not change keep focus and open details.

import { healthView, openBlocker, signalingRoute, servicesView } from './agents.js';
import { discoveredPanel } from './discovered.js';
import { active, deviceType, filterSites, types } from './filters.js';
import { errorText, t } from './messages.js';
import { windowText } from './policytext.js';
import { $, api, APIError, busy, clock, el, note, noteSlot, reconcile, when } from './ui.js';

const POLL_EVERY = 5_000;
let timer = null;
let me = null;

/** The devices seen last, by ID: other views read names from it. */
export const knownDevices = new Map();

let last = null; // the overview shown last, refiltered as the filters change

export function showDevices(user) {
  me = user;
  const form = $('device-filters');
  if (!form.dataset.wired) {
    form.dataset.wired = '1';
    form.addEventListener('input', () => last && render(last));
    form.addEventListener('submit', (e) => e.preventDefault());
  }
  stopDevices();
  refresh();
  timer = setInterval(refresh, POLL_EVERY);
}

export function stopDevices() {
  clearInterval(timer);
  timer = null;
}

async function refresh() {
  try {
    render(await api('GET', '/v1/overview'));
    note('devices', '', '');
  } catch (err) {
    if (err.status !== 401) note('devices', 'error', errorText('devices.load', err));
  }
}

/** currentFilter reads the filter form. */
function currentFilter() {
  const v = (id) => /** @type {HTMLInputElement} */ ($(id)).value;
  return { q: v('df-q'), site: v('df-site'), type: v('df-type'), state: v('df-state') };
}

/** fillSelect keeps select id's options in step with values (after its first, "any" option). */
function fillSelect(id, values) {
  const sel = /** @type {HTMLSelectElement} */ ($(id));
  const want = JSON.stringify(values);
  if (sel.dataset.values === want) return;
  sel.dataset.values = want;
  const keep = sel.value;
  while (sel.options.length > 1) sel.remove(1);
  for (const [value, text] of values) sel.append(el('option', { value, textContent: text }));
  sel.value = values.some(([v]) => v === keep) ? keep : '';
}

function render(ov) {
  last = ov;
  const all = Array.isArray(ov?.sites) ? ov.sites : [];
  fillSelect('df-site', all.filter((s) => s.id).map((s) => [s.id, s.name || s.id]));
  fillSelect('df-type', types(all).map((ty) => [ty, t(`devices.type.${ty}`)]));
  const f = currentFilter();
  const sites = filterSites(all, f);
  $('no-match').hidden = !(active(f) && sites.length === 0);
  $('device-filters').hidden = all.reduce((n, s) => n + (s.devices || []).length, 0) === 0;
  let count = 0;
  const box = $('sites');
  reconcile(
    box,
    sites,
    (s) => `site:${s.id}`,
    (s) => JSON.stringify([s.name, s.roles, (s.devices || []).length]),
    renderSite,
  );
  for (const site of sites) {
    const devices = Array.isArray(site.devices) ? site.devices : [];
    count += devices.length;
    for (const d of devices) knownDevices.set(d.id, { name: d.name, site: site.id, siteName: site.name });
    const list = box.querySelector(`[data-key="site:${CSS.escape(site.id)}"] .device-list`);
    if (!list) continue;
    const technician = (site.roles || []).includes('user');
    reconcile(
      list,
      devices,
      (d) => d.id,
      (d) => JSON.stringify([d, technician]),
      (d) => deviceItem(d, technician),
    );
  }
  $('empty').hidden = count > 0 || sites.length > 0;
}

function renderSite(site) {
  const devices = Array.isArray(site.devices) ? site.devices : [];
  const roles = (site.roles || []).map((r) => t(`role.${r}`)).join(', ');
  const name = site.id ? site.name || site.id : t('devices.site.unassigned');
  const headingId = `site-h-${site.id || 'none'}`;
  return el(
    'section',
    { className: 'site', dataset: { site: site.id }, attrs: { 'aria-labelledby': headingId } },
    el(
      'header',
      { className: 'site-head' },
      el('h2', { id: headingId, textContent: name }),
      el('span', { className: 'muted', textContent: t('devices.count', { count: devices.length }) }),
    ),
    roles || me?.admin ? el('p', { className: 'muted site-roles', textContent: roles ? t('devices.site.roles', { roles }) : t('devices.site.admin') }) : null,
    devices.length ? el('ul', { className: 'device-list', attrs: { role: 'list' } }) : el('p', { className: 'empty', textContent: t('devices.site.empty') }),
    site.id && (me?.admin || (site.roles || []).includes('configurer')) ? discoveredPanel(site, refresh) : null,
  );
}

/** inventoryFacts says what the inventory knows of d: model, serial, last seen, the agent's refusal, a move. */
function inventoryFacts(d) {
  const facts = [d.model && t('devices.model', { model: d.model }), d.serial && t('devices.serial', { serial: d.serial })].filter(Boolean);
  const out = [];
  if (facts.length) out.push(el('span', { className: 'device-facts muted', textContent: facts.join(' · ') }));
  if (!d.online && d.lastSeen) out.push(el('span', { className: 'device-last-seen muted', textContent: t('devices.lastSeen', { time: when(d.lastSeen) }) }));
  if (d.refused) out.push(el('span', { className: 'device-refused why', textContent: t('devices.refused', { reason: d.refused }) }));
  if (d.moved) out.push(el('span', { className: 'device-moved muted', textContent: t('devices.moved', { moved: d.moved }) }));
  return out;
}

async function removeDevice(d, button) {
  const name = d.name || d.id;
  if (!confirm(t('devices.removeConfirm', { name }))) return;
  await busy(button, async () => {
    try {
      await api('DELETE', `/v1/devices/${encodeURIComponent(d.id)}?agent=${encodeURIComponent(d.agent)}`);
      note('devices', 'ok', t('devices.removed', { name }));
      refresh();
    } catch (err) {
      note(`device:${d.id}`, 'error', errorText('device.remove', err, { name }));
    }
  });
}

function deviceItem(d, technician) {
  const name = d.name || d.id;
  const hv = healthView(d);
  const nameId = `dev-name-${d.id}`;

  const status = el(
    'div',
    { className: 'device-status' },
    el('span', { className: `status status-${hv.kind} health`, dataset: { health: hv.kind }, title: hv.checked ? t('health.checked', { time: when(hv.checked) }) : '' }, hv.text),
    el(
      'details',
      { className: 'raw', dataset: { keep: 'health' } },
      el('summary', { textContent: t('health.details') }),
      el('p', { className: 'raw-detail', textContent: hv.detail ? t('health.problem', { problem: hv.detail }) : hv.checked ? '' : t('health.neverChecked') }),
      hv.checked ? el('p', { className: 'muted', textContent: t('health.checked', { time: when(hv.checked) }) }) : null,
      signalingRoute(d) ? el('p', { className: 'muted signaling-route', textContent: t('health.signaling', { route: signalingRoute(d) }) }) : null,
    ),
  );

  let access;
  if (d.canConfigure) {
    const box = el('input', { type: 'checkbox', checked: !!d.enabled, className: 'enable-toggle', id: `enable-${d.id}`, dataset: { device: d.id, focus: 'toggle' }, attrs: { role: 'switch' } });
    box.addEventListener('change', () => setEnabled(d, box));
    access = el('label', { className: 'inline toggle', htmlFor: box.id }, box, el('span', { textContent: t('devices.access.toggle') }));
  } else {
    access = el('span', { className: d.enabled ? 'badge on' : 'badge', textContent: d.enabled ? t('devices.access.on') : t('devices.access.off') });
  }

  const action = el('div', { className: 'device-action' });
  if (technician || d.canOpen) {
    const closed = d.windowClosed ? t('devices.why.window', { next: d.nextWindow ? windowText(d.nextWindow, d.timeZone) : '?' }) : '';
    const why = openBlocker(d);
    const whyId = `why-${d.id}`;
    const open = el('button', {
      type: 'button',
      textContent: d.needsApproval ? t('devices.request') : t('devices.open'),
      className: 'open',
      disabled: !!why || !!closed,
      dataset: { device: d.id, focus: 'open' },
      attrs: { 'aria-label': t('devices.openLabel', { name }), ...(why ? { 'aria-describedby': whyId } : {}) },
    });
    open.addEventListener('click', () => openSession(d, open));
    action.append(open);
    // The device's terminal in the session window (xterm.js; the agent is
    // the SSH client), beside Open.
    const ssh = Array.isArray(d.services) ? d.services.find((s) => s.kind === 'ssh') : null;
    if (ssh) {
      const terminal = el('button', {
        type: 'button',
        textContent: t('devices.ssh'),
        className: 'open-ssh secondary',
        disabled: !d.canOpen,
        dataset: { device: d.id, focus: 'ssh' },
        attrs: { 'aria-label': t('devices.sshLabel', { name, port: ssh.port }) },
      });
      terminal.addEventListener('click', () => openSession(d, terminal, undefined, `/?porthole-view=ssh&port=${ssh.port}`));
      action.append(terminal);
    }
    // The device's screen in the session window (noVNC), beside Open.
    const vnc = Array.isArray(d.services) ? d.services.find((s) => s.kind === 'vnc') : null;
    if (vnc) {
      const screen = el('button', {
        type: 'button',
        textContent: t('devices.vnc'),
        className: 'open-vnc secondary',
        disabled: !d.canOpen,
        dataset: { device: d.id, focus: 'vnc' },
        attrs: { 'aria-label': t('devices.vncLabel', { name, port: vnc.port }) },
      });
      screen.addEventListener('click', () => openSession(d, screen, undefined, `/?porthole-view=vnc&port=${vnc.port}`));
      // Watch: the same screen, view-only at the agent (agent/rfbfilter).
      const watch = el('button', {
        type: 'button',
        textContent: t('devices.vncWatch'),
        className: 'open-vnc-watch secondary outline',
        disabled: !d.canOpen,
        dataset: { device: d.id, focus: 'vnc-watch' },
        attrs: { 'aria-label': t('devices.vncWatchLabel', { name, port: vnc.port }) },
      });
      watch.addEventListener('click', () => openSession(d, watch, undefined, `/?porthole-view=vnc&port=${vnc.port}&view-only=1`));
      action.append(screen, watch);
    }
    if (why) action.append(el('p', { className: 'why', id: whyId, textContent: t(why) }));
    else if (closed) action.append(el('p', { className: 'why window-closed', id: whyId, textContent: closed }));
    if (d.needsApproval) action.append(el('p', { className: 'muted needs-approval', textContent: t('devices.needsApproval') }));
  }
  if (d.canConfigure && d.adopted) {
    const remove = el('button', { type: 'button', className: 'secondary outline remove', textContent: t('devices.remove'), dataset: { device: d.id }, attrs: { 'aria-label': t('devices.removeLabel', { name }) } });
    remove.addEventListener('click', () => removeDevice(d, remove));
    action.append(remove);
  }

  return el(
    'li',
    { className: 'device', dataset: { device: d.id }, attrs: { 'aria-labelledby': nameId } },
    el(
      'div',
      { className: 'device-main' },
      el(
        'span',
        { className: 'device-name', id: nameId },
        el('span', { className: `type-icon type-${deviceType(d)}`, dataset: { type: deviceType(d) }, attrs: { 'aria-hidden': 'true' } }),
        el('span', { className: 'sr-only', textContent: `${t(`devices.type.${deviceType(d)}`)}: ` }),
        name,
      ),
      el('span', { className: 'device-id', textContent: d.id }),
      el(
        'span',
        { className: 'device-services', attrs: { 'aria-label': t('devices.services') } },
        ...servicesView(d).map((s) => el('span', { className: `service service-${s.kind}`, dataset: { service: s.kind }, textContent: s.label })),
      ),
      ...inventoryFacts(d),
    ),
    status,
    el('div', { className: 'device-access' }, access),
    action,
    noteSlot(`device:${d.id}`),
  );
}

async function setEnabled(d, box) {
  const name = d.name || d.id;
  box.disabled = true;
  box.setAttribute('aria-busy', 'true');
  try {
    // Device IDs are unique per site, not globally: name the agent too.
    const q = d.agent ? `?agent=${encodeURIComponent(d.agent)}` : '';
    const v = await api('PATCH', `/v1/devices/${encodeURIComponent(d.id)}${q}`, { enabled: box.checked });
    box.checked = !!v.enabled;
    note(`device:${d.id}`, 'ok', t(v.enabled ? 'devices.access.enabled' : 'devices.access.disabled', { name }));
    refresh();
  } catch (err) {
    box.checked = !box.checked;
    note(`device:${d.id}`, 'error', errorText('device.toggle', err, { name }));
  } finally {
    box.disabled = false;
    box.removeAttribute('aria-busy');
  }
}

/** Where the session window lives: the shell origin signaling gave (shell-<session>.<sessions domain>). */
function sessionOrigin(info) {
  if (info.shellOrigin) return info.shellOrigin;
  throw new APIError(500, 'internal', 'signaling has no sessions domain configured');
}

/**
 * openSession opens a session on device ({id, name, agent}) as button's
 * action; its feedback goes to the note slot key (the device's own by
 * default). view is the session window's path: '/' for the device's web
 * page, '/?porthole-view=vnc&port=N' for its screen (session/screen.js).
 */
export async function openSession(device, button, key = `device:${device.id}`, view = '/') {
  if (device.needsApproval) {
    askApproval(device, button, key, view);
    return;
  }
  await startSession(device, button, key, view);
}

/** startSession creates the session and opens its window. */
async function startSession(device, button, key, view) {
  const name = device.name || device.id;
  note(key, '', '');
  await busy(button, async () => {
    try {
      const info = await api('POST', '/v1/sessions', { device: device.id, ...(device.agent ? { agent: device.agent } : {}) });
      // The session window (its shell origin) signs itself in with OAuth
      // against this origin: no credential travels in the URL.
      const url = `${sessionOrigin(info)}${view}`;
      if ($('same-tab').checked) {
        location.assign(url);
        return;
      }
      window.open(url, '_blank', 'noopener,noreferrer');
      // window.open with noopener cannot report a blocked popup; offer a link.
      note(key, 'ok', t('devices.opened', { name }), { href: url, text: t('devices.openLink') });
    } catch (err) {
      if (err.code === 'approval_required') {
        askApproval(device, button, key, view);
        return;
      }
      note(key, 'error', errorText('device.open', err, { name }));
      if (err.code === 'outside_window') refresh();
    }
  });
}

// ---- approval (customer.go) ----

const WAIT_POLL = 2_000;

/**
 * askApproval asks the technician why and for how long (a dialog), sends
 * the request to the site's admins, waits for their answer and opens the
 * session once approved.
 */
function askApproval(device, button, key, view) {
  const name = device.name || device.id;
  const reason = el('textarea', { id: 'request-reason', required: true, maxLength: 500, rows: 3 });
  const minutes = el('input', { id: 'request-minutes', type: 'number', min: '1', max: '30', value: '15', required: true });
  const send = el('button', { type: 'submit', id: 'request-send', textContent: t('request.send') });
  const cancel = el('button', { type: 'button', id: 'request-cancel', className: 'secondary', textContent: t('request.cancel') });
  const form = el(
    'form',
    { method: 'dialog', noValidate: true },
    el('h2', { id: 'request-heading', textContent: t('request.heading', { name }) }),
    el('p', { textContent: t('request.intro') }),
    el('label', { htmlFor: 'request-reason', textContent: t('request.reason') }),
    reason,
    el('label', { htmlFor: 'request-minutes', textContent: t('request.minutes') }),
    minutes,
    el('div', { className: 'ph-actions' }, send, cancel),
    noteSlot('request-dialog'),
  );
  const dialog = /** @type {HTMLDialogElement} */ (el('dialog', { id: 'request-dialog', attrs: { 'aria-labelledby': 'request-heading' } }, form));
  document.getElementById('request-dialog')?.remove();
  document.body.append(dialog);
  const close = () => {
    dialog.close();
    dialog.remove();
  };
  cancel.addEventListener('click', close);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const why = reason.value.trim();
    if (!why) {
      note('request-dialog', 'error', t('request.needReason'));
      reason.focus();
      return;
    }
    busy(send, async () => {
      try {
        const r = await api('POST', '/v1/requests', { device: device.id, ...(device.agent ? { agent: device.agent } : {}), reason: why, minutes: Number(minutes.value) });
        close();
        waitForAnswer(r, device, button, key, view);
      } catch (err) {
        note('request-dialog', 'error', errorText('request.send', err, { name }));
      }
    });
  });
  dialog.showModal();
  reason.focus();
}

/** waitForAnswer shows the waiting state until the site's admins answer. */
function waitForAnswer(r, device, button, key, view) {
  const name = device.name || device.id;
  button.setAttribute('aria-busy', 'true');
  button.disabled = true;
  note(key, 'ok', t('request.waiting', { name, time: clock(r.expires) }));
  const done = () => {
    button.removeAttribute('aria-busy');
    button.disabled = false;
  };
  const poll = async () => {
    let v;
    try {
      v = await api('GET', `/v1/requests/${encodeURIComponent(r.id)}`);
    } catch (err) {
      if (err.status === 401) return done();
      setTimeout(poll, WAIT_POLL);
      return;
    }
    const p = { name, by: v.deciderName || v.decidedBy || '', comment: v.comment || '' };
    if (v.state === 'pending') {
      setTimeout(poll, WAIT_POLL);
      return;
    }
    done();
    if (v.state === 'approved') {
      await startSession({ ...device, needsApproval: false }, button, key, view);
    } else if (v.state === 'denied') {
      note(key, 'error', t(v.comment ? 'request.deniedComment' : 'request.denied', p));
    } else {
      note(key, 'error', t('request.expired', p));
    }
  };
  setTimeout(poll, WAIT_POLL);
}
