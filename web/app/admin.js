// The Admin view, in sections with their own addresses (#admin/users,
// #admin/sites, #admin/agents, #admin/audit): users and their roles at
// each site, sites (the customers), agents (enrollment, site, revocation)
// and the audit log of administrative actions. Names everywhere people
// read who and what; feedback beside the control that caused it.

import { enrollCommand, enrollmentRequest } from './agents.js';
import { errorText, has, t } from './messages.js';
import { ADMIN_SECTIONS } from './routes.js';
import { $, api, busy, el, note, noteSlot, paintNotes, when } from './ui.js';

let me = null;
let data = { users: [], sites: [], agents: [] };

const userName = (id) => data.users.find((u) => u.id === id)?.name || id;
const siteName = (id) => data.sites.find((s) => s.id === id)?.name || id;
const agentName = (id) => {
  const a = data.agents.find((x) => x.id === id);
  return a?.name || id;
};

/** showAdmin(user, section): show one section and load what it needs. */
export async function showAdmin(user, section) {
  me = user;
  for (const s of ADMIN_SECTIONS) {
    $(`admin-${s}`).hidden = s !== section;
    $(`tab-${s}`).setAttribute('aria-current', s === section ? 'page' : 'false');
  }
  await load(section);
}

async function load(section) {
  try {
    const [users, sites] = await Promise.all([api('GET', '/v1/users'), api('GET', '/v1/sites')]);
    data.users = users.users || [];
    data.sites = sites.sites || [];
    if (section === 'agents' || section === 'audit') data.agents = (await api('GET', '/v1/agents')).agents || [];
    if (section === 'users') {
      renderUsers();
      renderRoleForm();
    } else if (section === 'sites') {
      renderSites();
    } else if (section === 'agents') {
      renderAgents();
      renderEnrollSites();
    } else {
      renderAudit((await api('GET', '/v1/audit')).entries || []);
    }
    note('admin', '', '');
  } catch (err) {
    if (err.status !== 401) note('admin', 'error', errorText('admin.load', err));
  }
}

const current = () => ADMIN_SECTIONS.find((s) => !$(`admin-${s}`).hidden) || 'users';
const reload = () => load(current());

/**
 * act(button, key, action, fn, ok): run one change busy, then show ok (or
 * the error) in key's slot and reload the section.
 */
async function act(button, key, action, params, fn, ok) {
  note(key, '', '');
  await busy(button, async () => {
    try {
      const res = await fn();
      note(key, 'ok', typeof ok === 'function' ? ok(res) : ok);
    } catch (err) {
      note(key, 'error', errorText(action, err, params));
    }
  });
  await reload();
}

// ---- users and roles ----

function roleText(roles) {
  const parts = Object.entries(roles || {}).map(([site, rs]) =>
    t('admin.users.rolesAt', { site: siteName(site), roles: rs.map((r) => (has(`role.${r}`) ? t(`role.${r}`) : r)).join(', ') }),
  );
  return parts.length ? parts.join('; ') : t('admin.users.noRoles');
}

function renderUsers() {
  $('user-rows').replaceChildren(
    ...data.users.map((u) => {
      const key = `user:${u.id}`;
      const actions = el('div', { className: 'ph-row-actions' });
      if (u.id !== me.id) {
        const toggle = el('button', { type: 'button', className: 'secondary outline compact', textContent: u.disabled ? t('admin.users.enable') : t('admin.users.disable') });
        toggle.addEventListener('click', () =>
          act(toggle, key, 'user.update', { name: u.name }, () => api('PATCH', `/v1/users/${encodeURIComponent(u.id)}`, { disabled: !u.disabled }), t(u.disabled ? 'admin.users.enabledDone' : 'admin.users.disabledDone', { name: u.name })),
        );
        const del = el('button', { type: 'button', className: 'ph-danger outline compact', textContent: t('admin.users.delete') });
        del.addEventListener('click', () => {
          if (!confirm(t('admin.users.deleteConfirm', { name: u.name }))) return;
          act(del, 'users-table', 'user.delete', { name: u.name }, () => api('DELETE', `/v1/users/${encodeURIComponent(u.id)}`), t('admin.users.deleted', { name: u.name }));
        });
        actions.append(toggle, del);
        if (!u.sso && !u.disabled) {
          const kind = u.invited ? 'invite' : 'reset';
          const link = el('button', { type: 'button', className: 'secondary outline compact', textContent: t(u.invited ? 'admin.users.inviteLink' : 'admin.users.resetLink') });
          link.addEventListener('click', () =>
            act(link, key, 'user.link', { name: u.name }, () => makeLink(u, kind), t('admin.users.linkMade')),
          );
          actions.append(link);
        }
        if (u.totp) {
          const reset = el('button', { type: 'button', className: 'secondary outline compact', textContent: t('admin.users.resetTotp') });
          reset.addEventListener('click', () =>
            act(reset, key, 'user.update', { name: u.name }, () => api('PATCH', `/v1/users/${encodeURIComponent(u.id)}`, { resetTotp: true }), t('admin.users.totpReset', { name: u.name })),
          );
          actions.append(reset);
        }
      }
      return el(
        'tr',
        { dataset: { user: u.name } },
        el(
          'td',
          {},
          el('span', { className: 'cell-name', textContent: u.displayName || u.name }),
          u.displayName ? el('span', { className: 'cell-id', textContent: u.name }) : null,
          u.disabled ? el('span', { className: 'badge', textContent: t('admin.users.disabledTag') }) : null,
          u.sso ? el('span', { className: 'badge', textContent: t('admin.users.ssoTag') }) : null,
          u.invited ? el('span', { className: 'badge', textContent: t('admin.users.invitedTag') }) : null,
          u.id === me.id ? el('span', { className: 'badge on', textContent: t('admin.users.you') }) : null,
        ),
        el('td', { textContent: u.admin ? t('admin.users.yes') : t('admin.users.no') }),
        el('td', { textContent: u.totp ? t('admin.users.on') : t('admin.users.off') }),
        el('td', { textContent: roleText(u.roles) }),
        el('td', {}, actions, noteSlot(key)),
      );
    }),
  );
}

function renderRoleForm() {
  const us = $('role-user');
  const ss = $('role-site');
  const keepU = us.value;
  const keepS = ss.value;
  us.replaceChildren(...data.users.map((u) => el('option', { value: u.id, textContent: u.name })));
  ss.replaceChildren(...data.sites.map((s) => el('option', { value: s.id, textContent: s.name || s.id })));
  if (keepU && data.users.some((u) => u.id === keepU)) us.value = keepU;
  if (keepS && data.sites.some((s) => s.id === keepS)) ss.value = keepS;
  $('role-submit').disabled = data.sites.length === 0;
  if (data.sites.length === 0) note('role-form', 'ok', t('admin.roles.needSite'));
  syncRoleBoxes();
}

function syncRoleBoxes() {
  const u = data.users.find((x) => x.id === $('role-user').value);
  const roles = u?.roles?.[$('role-site').value] || [];
  $('role-configurer').checked = roles.includes('configurer');
  $('role-technician').checked = roles.includes('user');
  $('role-siteadmin').checked = roles.includes('siteadmin');
}

/** makeLink(user, kind): a one-time password link, shown once below the form. */
async function makeLink(u, kind) {
  const res = await api('POST', `/v1/users/${encodeURIComponent(u.id)}/link`, { kind });
  $('user-link-url').textContent = res.url;
  $('user-link-for').textContent = t('admin.users.linkFor', { name: res.user, time: when(res.expires) });
  $('user-link-copy').textContent = t('admin.users.copy');
  $('user-link').hidden = false;
  $('user-link').scrollIntoView({ block: 'center' });
  return res;
}

// ---- sites ----

function renderSites() {
  $('sites-empty').hidden = data.sites.length > 0;
  $('site-table').hidden = data.sites.length === 0;
  $('site-rows').replaceChildren(
    ...data.sites.map((s) => {
      const key = `site:${s.id}`;
      const del = el('button', { type: 'button', className: 'ph-danger outline compact', textContent: t('admin.sites.delete') });
      del.addEventListener('click', () => {
        if (!confirm(t('admin.sites.deleteConfirm', { name: s.name }))) return;
        act(del, 'sites-table', 'site.delete', { name: s.name }, () => api('DELETE', `/v1/sites/${encodeURIComponent(s.id)}`), t('admin.sites.deleted', { name: s.name }));
      });
      return el('tr', { dataset: { site: s.id } }, el('td', { textContent: s.name }), el('td', {}, el('span', { className: 'cell-id', textContent: s.id })), el('td', {}, del, noteSlot(key)));
    }),
  );
}

// ---- agents and enrollment ----

function renderAgents() {
  $('agents-empty').hidden = data.agents.length > 0;
  $('agent-table').hidden = data.agents.length === 0;
  $('agent-rows').replaceChildren(
    ...data.agents.map((a) => {
      const name = a.name || a.id;
      const key = `agent:${a.id}`;
      const selId = `agent-site-${a.id}`;
      const sel = el(
        'select',
        { id: selId, className: 'compact', attrs: { 'aria-label': t('admin.agents.siteLabel', { name }) } },
        el('option', { value: '', textContent: t('admin.agents.noSite') }),
        ...data.sites.map((s) => el('option', { value: s.id, textContent: s.name || s.id })),
      );
      sel.value = a.site || '';
      sel.addEventListener('change', () => {
        const site = sel.value;
        act(sel, key, 'agent.assign', { name }, () => api('PUT', `/v1/agents/${encodeURIComponent(a.id)}`, { site }), site ? t('admin.agents.assigned', { name, site: siteName(site) }) : t('admin.agents.unassigned', { name }));
      });
      const revoke = el('button', { type: 'button', className: 'ph-danger outline compact revoke', textContent: t('admin.agents.revoke'), dataset: { agent: a.id }, attrs: { 'aria-label': t('admin.agents.revokeLabel', { name }) } });
      revoke.addEventListener('click', () => {
        if (!confirm(t('admin.agents.revokeConfirm', { name }))) return;
        act(revoke, key, 'agent.revoke', { name }, () => api('POST', `/v1/agents/${encodeURIComponent(a.id)}/revoke`), (res) =>
          t(res?.disconnected ? 'admin.agents.revokedDisconnected' : 'admin.agents.revoked', { name: res?.agent || name }),
        );
      });
      return el(
        'tr',
        { dataset: { agent: a.id } },
        el('td', {}, el('span', { className: 'cell-name', textContent: name }), name !== a.id ? el('span', { className: 'cell-id', textContent: a.id }) : null),
        el('td', {}, el('span', { className: `status ${a.online ? 'status-ok' : 'status-off'}`, textContent: a.online ? t('admin.agents.connected') : t('admin.agents.notConnected') })),
        el('td', { className: 'num', textContent: String(a.devices) }),
        el('td', {}, sel),
        el('td', {}, revoke, noteSlot(key)),
      );
    }),
  );
  paintNotes($('agent-rows'));
}

function renderEnrollSites() {
  const sel = $('enroll-site');
  const keep = sel.value;
  sel.replaceChildren(...data.sites.map((s) => el('option', { value: s.id, textContent: s.name || s.id })));
  if (keep && data.sites.some((s) => s.id === keep)) sel.value = keep;
}

function showEnrollment(res) {
  $('enroll-command').textContent = enrollCommand(location.origin, res.token);
  $('enroll-for').textContent = t('admin.enroll.for', { agent: res.agent, site: siteName(res.site), time: when(res.expires) });
  $('enroll-copy').textContent = t('admin.enroll.copy');
  $('enroll-result').hidden = false;
  $('enroll-result').scrollIntoView({ block: 'center' });
}

// ---- audit ----

function renderAudit(entries) {
  $('audit-empty').hidden = entries.length > 0;
  $('audit-table').hidden = entries.length === 0;
  const name = (id) => {
    if (!id) return '';
    if (data.users.some((u) => u.id === id)) return userName(id);
    if (data.sites.some((s) => s.id === id)) return siteName(id);
    return agentName(id);
  };
  $('audit-rows').replaceChildren(
    ...entries
      .slice()
      .reverse()
      .map((e) =>
        el(
          'tr',
          {},
          el('td', { className: 'num', textContent: String(e.seq) }),
          el('td', { textContent: when(e.time) }),
          el('td', { textContent: has(`audit.actor.${e.actor}`) ? t(`audit.actor.${e.actor}`) : name(e.actor) }),
          el('td', { textContent: has(`audit.${e.action}`) ? t(`audit.${e.action}`) : e.action }),
          el('td', { textContent: name(e.target) }),
          el('td', { textContent: e.site ? siteName(e.site) : '' }),
          el('td', { className: 'detail', textContent: auditDetail(e.detail) }),
        ),
      ),
  );
}

/**
 * auditDetail({token_by: 'cli', before: ''}) → "token by: cli; before: —":
 * the entry's detail as words (keys are the server's, not codes to show).
 */
export function auditDetail(detail) {
  return Object.entries(detail || {})
    .map(([k, v]) => `${has(`audit.detail.${k}`) ? t(`audit.detail.${k}`) : k.replaceAll('_', ' ')}: ${v === '' ? '—' : v}`)
    .join('; ');
}

// ---- forms, wired once ----

function submitWith(id, action, fn) {
  const form = $(id);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    note(id, '', '');
    await busy(e.submitter || form.querySelector('button[type=submit]'), async () => {
      try {
        const ok = await fn(form);
        if (ok) note(id, 'ok', ok);
      } catch (err) {
        note(id, 'error', errorText(action, err));
      }
    });
    await reload();
  });
}

export function setupAdmin() {
  $('role-user').addEventListener('change', syncRoleBoxes);
  $('role-site').addEventListener('change', syncRoleBoxes);

  submitWith('role-form', 'roles.save', async () => {
    const roles = [];
    if ($('role-configurer').checked) roles.push('configurer');
    if ($('role-technician').checked) roles.push('user');
    if ($('role-siteadmin').checked) roles.push('siteadmin');
    const user = $('role-user').value;
    const site = $('role-site').value;
    await api('PUT', `/v1/users/${encodeURIComponent(user)}/roles/${encodeURIComponent(site)}`, { roles });
    return t('admin.roles.saved', { user: userName(user), site: siteName(site) });
  });

  submitWith('user-form', 'user.create', async (form) => {
    const name = $('user-name').value.trim();
    const password = $('user-password').value;
    const u = await api('POST', '/v1/users', { name, password, admin: $('user-admin').checked });
    form.reset();
    // No password: the user chooses one with an invitation link.
    if (!password) await makeLink(u, 'invite');
    return t('admin.users.created', { name });
  });

  submitWith('site-form', 'site.create', async (form) => {
    const name = $('site-name').value.trim();
    await api('POST', '/v1/sites', { name });
    form.reset();
    return t('admin.sites.created', { name });
  });

  submitWith('enroll-form', 'enroll.create', async (form) => {
    const body = enrollmentRequest({
      site: $('enroll-site').value,
      agent: $('enroll-agent').value.trim(),
      name: $('enroll-name').value.trim(),
      hours: $('enroll-hours').value,
    });
    const res = await api('POST', '/v1/enrollments', body);
    form.reset();
    showEnrollment(res);
    return '';
  });

  $('user-link-copy').addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText($('user-link-url').textContent);
      $('user-link-copy').textContent = t('admin.users.copied');
    } catch {
      const r = document.createRange();
      r.selectNodeContents($('user-link-url'));
      getSelection().removeAllRanges();
      getSelection().addRange(r);
    }
  });
  $('user-link-done').addEventListener('click', () => {
    $('user-link').hidden = true;
    $('user-link-url').textContent = '';
  });

  $('enroll-copy').addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText($('enroll-command').textContent);
      $('enroll-copy').textContent = t('admin.enroll.copied');
    } catch {
      // No clipboard (insecure context, or refused): select the text instead.
      const r = document.createRange();
      r.selectNodeContents($('enroll-command'));
      getSelection().removeAllRanges();
      getSelection().addRange(r);
    }
  });
  $('enroll-done').addEventListener('click', () => {
    // The token is shown once: gone from the page when dismissed.
    $('enroll-command').textContent = '';
    $('enroll-result').hidden = true;
  });
}

/** leaveAdmin: the enrollment token leaves the page with the view. */
export function leaveAdmin() {
  $('enroll-command').textContent = '';
  $('enroll-result').hidden = true;
  // A password link is a secret: it does not outlive the view.
  $('user-link-url').textContent = '';
  $('user-link').hidden = true;
}
