// The app: sign in (with a second factor when the account has one), the
// devices of the technician's sites with live status, the "Remote access
// enabled" toggle for configurers, the Open button for users, the account
// page (password, two-factor login, API tokens) and, for admins, users,
// roles, sites, agents (enrollment tokens, revocation) and the audit log.
//
// The login lives in an HttpOnly cookie the page never sees; every request
// is same-origin. Every value from the server is set as text, never HTML.

import { healthView, renderEnrollSites, revokeButton, setupAgentAdmin } from './agents.js';
import { showJobs } from './jobs.js';

const POLL_EVERY = 5_000;
const VIEWS = ['devices', 'jobs', 'account', 'admin'];

let me = null;
let pollTimer = null;
let mfaToken = '';

/** An API error as readable text with its code. */
class APIError extends Error {
  constructor(status, code, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code || `http_${status}`;
  }
}

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: body ? { 'Content-Type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
    credentials: 'same-origin',
    cache: 'no-store',
  });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: fall through with the status
  }
  if (!res.ok) {
    if (res.status === 401 && me && path !== '/v1/login' && path !== '/v1/login/mfa' && !path.startsWith('/v1/me/')) {
      showSignIn('Your login has ended. Sign in again.');
    }
    throw new APIError(res.status, data?.code, data?.message || text.slice(0, 200));
  }
  return data;
}

/** el('td', {className: 'x'}, 'text', child…): a DOM element; strings become text. */
function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e[k] = v;
  }
  e.append(...children.filter((c) => c !== null && c !== undefined));
  return e;
}

const $ = (id) => document.getElementById(id);

function showMessage(text, kind = 'error', link) {
  const m = $('message');
  m.replaceChildren(text);
  if (link) {
    m.append(' ', el('a', { href: link, target: '_blank', rel: 'noopener noreferrer', textContent: 'Open the session' }));
  }
  m.dataset.kind = kind;
  m.hidden = !text;
}

function describe(err) {
  return err instanceof APIError ? `${err.message} (${err.code})` : `${err.message || err} (network)`;
}

// ---- sign in ----

/** Where to go after signing in: only our own OAuth authorization endpoint. */
function nextURL() {
  const next = new URLSearchParams(location.search).get('next') || '';
  return next.startsWith('/oauth/authorize?') ? next : '';
}

function showSignIn(reason) {
  me = null;
  clearInterval(pollTimer);
  pollTimer = null;
  for (const v of VIEWS) $(v).hidden = true;
  $('nav').hidden = true;
  $('signout').hidden = true;
  $('who').textContent = '';
  $('signin').hidden = false;
  $('login-form').hidden = false;
  $('mfa-form').hidden = true;
  showMessage(reason || (nextURL() ? 'Sign in to continue to the device.' : ''), 'info');
  $('login-username').focus();
}

async function signedIn(user) {
  me = user;
  const next = nextURL();
  if (next) {
    location.assign(next);
    return;
  }
  $('signin').hidden = true;
  $('nav').hidden = false;
  $('signout').hidden = false;
  $('nav-admin').hidden = !me.admin;
  $('who').textContent = me.displayName || me.name;
  showMessage('');
  route();
}

$('login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const username = $('login-username').value.trim();
  const password = $('login-password').value;
  try {
    const res = await api('POST', '/v1/login', { username, password });
    $('login-password').value = '';
    if (res.mfaRequired) {
      mfaToken = res.mfaToken;
      $('login-form').hidden = true;
      $('mfa-form').hidden = false;
      showMessage('');
      $('mfa-code').focus();
      return;
    }
    signedIn(res.user);
  } catch (err) {
    showMessage(`Could not sign in: ${describe(err)}`);
  }
});

$('mfa-recovery').addEventListener('change', (e) => {
  $('mfa-label').textContent = e.target.checked ? 'Recovery code' : 'Code';
});

$('mfa-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const value = $('mfa-code').value.trim();
  const body = $('mfa-recovery').checked ? { mfaToken, recoveryCode: value } : { mfaToken, code: value };
  try {
    const res = await api('POST', '/v1/login/mfa', body);
    $('mfa-code').value = '';
    mfaToken = '';
    signedIn(res.user);
  } catch (err) {
    $('mfa-code').value = '';
    if (err.status === 401 && err.message.includes('start again')) {
      showSignIn(`Could not sign in: ${describe(err)}`);
      return;
    }
    showMessage(`Could not sign in: ${describe(err)}`);
  }
});

$('signout').addEventListener('click', async () => {
  try {
    await api('POST', '/v1/logout');
  } catch {
    // signed out anyway as far as this page is concerned
  }
  showSignIn('You are signed out.');
});

// ---- views ----

function route() {
  if (!me) return;
  let view = location.hash.slice(1);
  if (!VIEWS.includes(view) || (view === 'admin' && !me.admin)) view = 'devices';
  for (const v of VIEWS) {
    $(v).hidden = v !== view;
    $(`nav-${v}`).setAttribute('aria-current', v === view ? 'page' : 'false');
  }
  clearInterval(pollTimer);
  pollTimer = null;
  if (view === 'devices') {
    refreshDevices();
    pollTimer = setInterval(refreshDevices, POLL_EVERY);
  } else if (view === 'jobs') {
    showJobs({ api, el, $, me, showMessage, describe });
  } else if (view === 'account') {
    refreshAccount();
  } else {
    refreshAdmin();
  }
}

window.addEventListener('hashchange', route);

// ---- devices ----

async function refreshDevices() {
  try {
    const ov = await api('GET', '/v1/overview');
    renderOverview(ov);
    if ($('message').dataset.kind === 'poll') showMessage('');
  } catch (err) {
    if (err.status !== 401) showMessage(`Could not load devices: ${describe(err)}`, 'poll');
  }
}

const ROLE_NAMES = { configurer: 'Remote Technician Configurer', user: 'Remote Technician User' };

function renderOverview(ov) {
  const sites = Array.isArray(ov?.sites) ? ov.sites : [];
  let count = 0;
  $('sites').replaceChildren(
    ...sites.map((site) => {
      const devices = Array.isArray(site.devices) ? site.devices : [];
      count += devices.length;
      const roles = (site.roles || []).map((r) => ROLE_NAMES[r] || r).join(', ');
      return el(
        'div',
        { className: 'site', dataset: { site: site.id } },
        el('h2', { textContent: site.name || site.id || 'Unassigned agents' }),
        el('p', { className: 'roles', textContent: roles ? `Your roles: ${roles}` : me?.admin ? 'You administer this site.' : '' }),
        devices.length
          ? el(
              'table',
              { className: 'devices' },
              el('thead', {}, el('tr', {}, ...['Status', 'Device', 'ID', 'Reachability', 'Remote access', ''].map((h) => el('th', { textContent: h })))),
              el('tbody', {}, ...devices.map((d) => deviceRow(d, (site.roles || []).includes('user')))),
            )
          : el('p', { className: 'empty', textContent: 'No devices connected in this site.' }),
      );
    }),
  );
  $('empty').hidden = count > 0 || sites.length > 0;
}

function deviceRow(d, technician) {
  const status = el('td', {}, el('span', { className: d.online ? 'dot online' : 'dot' }), d.online ? 'online' : 'offline');
  let setting;
  if (d.canConfigure) {
    const box = el('input', { type: 'checkbox', checked: !!d.enabled, className: 'enable-toggle', dataset: { device: d.id } });
    box.addEventListener('change', () => setEnabled(d, box));
    setting = el('label', { className: 'toggle' }, box, 'Remote access enabled');
  } else {
    setting = el('span', { className: d.enabled ? 'badge on' : 'badge', textContent: d.enabled ? 'enabled' : 'disabled' });
  }
  const hv = healthView(d);
  const health = el('td', { className: `health ${hv.kind}`, title: hv.title, dataset: { health: hv.kind } }, hv.text);
  const action = el('td');
  if (technician || d.canOpen) {
    const open = el('button', { type: 'button', textContent: 'Open', className: 'open', dataset: { device: d.id } });
    open.disabled = !d.canOpen;
    open.title = d.canOpen ? '' : !d.online ? 'The device is offline' : !d.enabled ? 'Remote access is disabled' : 'You may not open devices of this site';
    open.addEventListener('click', () => openSession(d, open));
    action.append(open);
  }
  return el(
    'tr',
    { dataset: { device: d.id } },
    status,
    el('td', { textContent: d.name || d.id }),
    el('td', { className: 'id', textContent: d.id }),
    health,
    el('td', {}, setting),
    action,
  );
}

async function setEnabled(d, box) {
  box.disabled = true;
  try {
    const v = await api('PATCH', `/v1/devices/${encodeURIComponent(d.id)}`, { enabled: box.checked });
    box.checked = !!v.enabled;
    showMessage(`Remote access ${v.enabled ? 'enabled' : 'disabled'} for ${d.name || d.id}.`, 'info');
    refreshDevices();
  } catch (err) {
    box.checked = !box.checked;
    showMessage(`Could not change ${d.name || d.id}: ${describe(err)}`);
  } finally {
    box.disabled = false;
  }
}

/** Where the session lives: the origin signaling gave, or <session>.localhost in development. */
function sessionOrigin(info) {
  if (info.origin) return info.origin;
  if (location.hostname === 'localhost' || location.hostname === '127.0.0.1') {
    return `${location.protocol}//${info.session}.localhost${location.port ? `:${location.port}` : ''}`;
  }
  throw new APIError(500, 'internal', 'Signaling has no session domain configured');
}

async function openSession(device, button) {
  button.disabled = true;
  showMessage('');
  try {
    const info = await api('POST', '/v1/sessions', { device: device.id });
    // The session origin signs itself in with OAuth against this origin:
    // no credential travels in the URL.
    const url = `${sessionOrigin(info)}/`;
    if ($('same-tab').checked) {
      location.assign(url);
      return;
    }
    window.open(url, '_blank', 'noopener,noreferrer');
    // window.open with noopener cannot report a blocked popup; offer a link.
    showMessage(`Session for ${device.name || device.id} opened in a new tab.`, 'info', url);
  } catch (err) {
    showMessage(`Could not open ${device.name || device.id}: ${describe(err)}`);
  } finally {
    button.disabled = false;
  }
}

// ---- account ----

async function refreshAccount() {
  try {
    me = await api('GET', '/v1/me');
    $('totp-status').textContent = me.totp
      ? `Two-factor login is on (${me.recoveryCodes} recovery codes left).`
      : 'Two-factor login is off.';
    $('totp-start').hidden = me.totp;
    $('totp-off-form').hidden = !me.totp;
    $('totp-verify-form').hidden = true;
    const list = await api('GET', '/v1/me/tokens');
    $('token-rows').replaceChildren(
      ...list.tokens.map((t) => {
        const revoke = el('button', { type: 'button', textContent: 'Revoke' });
        revoke.addEventListener('click', async () => {
          try {
            await api('DELETE', `/v1/me/tokens/${encodeURIComponent(t.id)}`);
            refreshAccount();
          } catch (err) {
            showMessage(`Could not revoke: ${describe(err)}`);
          }
        });
        return el(
          'tr',
          {},
          el('td', { textContent: t.name }),
          el('td', { textContent: t.scopes.join(' ') }),
          el('td', { textContent: new Date(t.created).toLocaleString() }),
          el('td', { textContent: t.expires ? new Date(t.expires).toLocaleString() : 'never' }),
          el('td', {}, revoke),
        );
      }),
    );
  } catch (err) {
    if (err.status !== 401) showMessage(`Could not load the account: ${describe(err)}`);
  }
}

$('password-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  try {
    await api('POST', '/v1/me/password', { current: $('pw-current').value, new: $('pw-new').value });
    e.target.reset();
    showMessage('Password changed. Your other logins have ended.', 'info');
  } catch (err) {
    showMessage(`Could not change the password: ${describe(err)}`);
  }
});

$('totp-start').addEventListener('click', async () => {
  try {
    const en = await api('POST', '/v1/me/totp');
    $('totp-secret').textContent = en.secret;
    $('totp-url').href = en.url;
    $('totp-verify-form').hidden = false;
    $('totp-start').hidden = true;
    $('totp-code').focus();
  } catch (err) {
    showMessage(`Could not start: ${describe(err)}`);
  }
});

$('totp-verify-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  try {
    const rc = await api('POST', '/v1/me/totp/verify', { code: $('totp-code').value.trim() });
    e.target.reset();
    $('recovery-codes').replaceChildren(...rc.codes.map((c) => el('li', { textContent: c })));
    $('recovery').hidden = false;
    showMessage('Two-factor login is on.', 'info');
    refreshAccount();
  } catch (err) {
    showMessage(`Could not turn on two-factor login: ${describe(err)}`);
  }
});

$('totp-off-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  try {
    await api('DELETE', '/v1/me/totp', { password: $('totp-off-password').value });
    e.target.reset();
    $('recovery').hidden = true;
    showMessage('Two-factor login is off.', 'info');
    refreshAccount();
  } catch (err) {
    showMessage(`Could not turn off two-factor login: ${describe(err)}`);
  }
});

$('token-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const scopes = [...e.target.querySelectorAll('input[type=checkbox]:checked')].map((b) => b.value);
  try {
    const t = await api('POST', '/v1/me/tokens', { name: $('token-name').value.trim(), scopes });
    e.target.reset();
    const p = $('token-created');
    p.textContent = `New token (shown once): ${t.token}`;
    p.hidden = false;
    refreshAccount();
  } catch (err) {
    showMessage(`Could not create the token: ${describe(err)}`);
  }
});

// ---- admin ----

let adminData = { users: [], sites: [] };

async function refreshAdmin() {
  try {
    const [users, sites, agents, audit] = await Promise.all([
      api('GET', '/v1/users'),
      api('GET', '/v1/sites'),
      api('GET', '/v1/agents'),
      api('GET', '/v1/audit'),
    ]);
    adminData = { users: users.users, sites: sites.sites };
    renderUsers(users.users);
    renderSites(sites.sites);
    renderAgents(agents.agents, sites.sites);
    renderEnrollSites({ $, el }, sites.sites);
    renderAudit(audit.entries);
    renderRoleForm();
  } catch (err) {
    if (err.status !== 401) showMessage(`Could not load administration: ${describe(err)}`);
  }
}

function roleText(roles) {
  return Object.entries(roles || {})
    .map(([site, rs]) => `${site}: ${rs.join(', ')}`)
    .join('; ');
}

function renderUsers(users) {
  $('user-rows').replaceChildren(
    ...users.map((u) => {
      const actions = el('td');
      if (u.id !== me.id) {
        const toggle = el('button', { type: 'button', textContent: u.disabled ? 'Enable' : 'Disable' });
        toggle.addEventListener('click', () => adminCall('PATCH', `/v1/users/${encodeURIComponent(u.id)}`, { disabled: !u.disabled }));
        const del = el('button', { type: 'button', textContent: 'Delete' });
        del.addEventListener('click', () => {
          if (confirm(`Delete ${u.name}?`)) adminCall('DELETE', `/v1/users/${encodeURIComponent(u.id)}`);
        });
        actions.append(toggle, ' ', del);
        if (u.totp) {
          const reset = el('button', { type: 'button', textContent: 'Reset two-factor' });
          reset.addEventListener('click', () => adminCall('PATCH', `/v1/users/${encodeURIComponent(u.id)}`, { resetTotp: true }));
          actions.append(' ', reset);
        }
      }
      return el(
        'tr',
        { dataset: { user: u.name } },
        el('td', { textContent: u.name + (u.disabled ? ' (disabled)' : '') }),
        el('td', { textContent: u.admin ? 'yes' : '' }),
        el('td', { textContent: u.totp ? 'on' : 'off' }),
        el('td', { textContent: roleText(u.roles) }),
        actions,
      );
    }),
  );
}

function renderSites(sites) {
  $('site-rows').replaceChildren(
    ...sites.map((s) => {
      const del = el('button', { type: 'button', textContent: 'Delete' });
      del.addEventListener('click', () => adminCall('DELETE', `/v1/sites/${encodeURIComponent(s.id)}`));
      return el('tr', {}, el('td', { textContent: s.id }), el('td', { textContent: s.name }), el('td', {}, del));
    }),
  );
}

function renderAgents(agents, sites) {
  $('agent-rows').replaceChildren(
    ...agents.map((a) => {
      const sel = el('select', {}, el('option', { value: '', textContent: '(no site)' }), ...sites.map((s) => el('option', { value: s.id, textContent: s.name })));
      sel.value = a.site || '';
      sel.addEventListener('change', () => adminCall('PUT', `/v1/agents/${encodeURIComponent(a.id)}`, { site: sel.value }));
      return el(
        'tr',
        { dataset: { agent: a.id } },
        el('td', { textContent: a.name || a.id }),
        el('td', {}, el('span', { className: a.online ? 'dot online' : 'dot' }), a.online ? 'online' : 'offline'),
        el('td', { textContent: String(a.devices) }),
        el('td', {}, sel),
        el('td', {}, revokeButton({ api, el, showMessage, describe, refresh: refreshAdmin }, a)),
      );
    }),
  );
}

function renderAudit(entries) {
  $('audit-rows').replaceChildren(
    ...entries
      .slice()
      .reverse()
      .map((e) =>
        el(
          'tr',
          {},
          el('td', { textContent: String(e.seq) }),
          el('td', { textContent: new Date(e.time).toLocaleString() }),
          el('td', { textContent: nameOf(e.actor) }),
          el('td', { textContent: e.action }),
          el('td', { textContent: nameOf(e.target || '') }),
          el('td', { textContent: e.site || '' }),
          el('td', { textContent: Object.entries(e.detail || {}).map(([k, v]) => `${k}=${v}`).join(' ') }),
        ),
      ),
  );
}

function nameOf(id) {
  return adminData.users.find((u) => u.id === id)?.name || id;
}

function renderRoleForm() {
  const us = $('role-user');
  const ss = $('role-site');
  const keepU = us.value;
  const keepS = ss.value;
  us.replaceChildren(...adminData.users.map((u) => el('option', { value: u.id, textContent: u.name })));
  ss.replaceChildren(...adminData.sites.map((s) => el('option', { value: s.id, textContent: s.name })));
  if (keepU) us.value = keepU;
  if (keepS) ss.value = keepS;
  syncRoleBoxes();
}

function syncRoleBoxes() {
  const u = adminData.users.find((x) => x.id === $('role-user').value);
  const roles = u?.roles?.[$('role-site').value] || [];
  $('role-configurer').checked = roles.includes('configurer');
  $('role-technician').checked = roles.includes('user');
}

$('role-user').addEventListener('change', syncRoleBoxes);
$('role-site').addEventListener('change', syncRoleBoxes);

$('role-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const roles = [];
  if ($('role-configurer').checked) roles.push('configurer');
  if ($('role-technician').checked) roles.push('user');
  adminCall('PUT', `/v1/users/${encodeURIComponent($('role-user').value)}/roles/${encodeURIComponent($('role-site').value)}`, { roles });
});

$('user-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  await adminCall('POST', '/v1/users', { name: $('user-name').value.trim(), password: $('user-password').value, admin: $('user-admin').checked });
  e.target.reset();
});

$('site-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  await adminCall('POST', '/v1/sites', { name: $('site-name').value.trim() });
  e.target.reset();
});

async function adminCall(method, path, body) {
  try {
    await api(method, path, body);
    showMessage('Saved.', 'info');
  } catch (err) {
    showMessage(`Could not save: ${describe(err)}`);
  }
  refreshAdmin();
}

setupAgentAdmin({ api, el, $, showMessage, describe, refresh: refreshAdmin });

// ---- start ----

async function start() {
  try {
    signedIn(await api('GET', '/v1/me'));
  } catch {
    showSignIn('');
  }
}

start();
