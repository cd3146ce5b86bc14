// The Account view: the signed-in user's password, two-factor login and
// personal API tokens. Feedback shows beside the form that caused it.

import { errorText, t } from './messages.js';
import { $, anchor, api, busy, el, note, when } from './ui.js';

export async function showAccount() {
  try {
    const me = await api('GET', '/v1/me');
    // Single sign-on users have no password here, and their second factor
    // is the identity provider's.
    $('account-sso').hidden = !me.sso;
    $('account-password').hidden = !!me.sso;
    $('account-totp').hidden = !!me.sso;
    $('totp-status').textContent = me.totp ? t('account.totp.on', { count: me.recoveryCodes }) : t('account.totp.off');
    $('totp-start').hidden = me.totp;
    $('totp-off-form').hidden = !me.totp;
    const list = await api('GET', '/v1/me/tokens');
    const tokens = Array.isArray(list?.tokens) ? list.tokens : [];
    $('tokens-empty').hidden = tokens.length > 0;
    $('token-table').hidden = tokens.length === 0;
    $('token-rows').replaceChildren(...tokens.map(tokenRow));
  } catch (err) {
    if (err.status !== 401) note('token-form', 'error', errorText('account.load', err));
  }
}

function tokenRow(tk) {
  const revoke = el('button', { type: 'button', className: 'secondary outline compact', textContent: t('account.tokens.revoke'), attrs: { 'aria-label': t('account.tokens.revokeLabel', { name: tk.name }) } });
  revoke.addEventListener('click', () =>
    busy(revoke, async () => {
      try {
        await api('DELETE', `/v1/me/tokens/${encodeURIComponent(tk.id)}`);
        note('token-form', 'ok', t('account.tokens.revoked', { name: tk.name }));
        await showAccount();
      } catch (err) {
        note('token-form', 'error', errorText('token.revoke', err));
      }
    }),
  );
  return el(
    'tr',
    { dataset: { token: tk.id } },
    el('td', { textContent: tk.name }),
    el('td', { textContent: (tk.scopes || []).join(', ') }),
    el('td', { textContent: when(tk.created) }),
    el('td', { textContent: tk.expires ? when(tk.expires) : t('account.tokens.never') }),
    el('td', {}, revoke),
  );
}

/** submitWith(form, action, fn): a form whose submit runs fn busy, with feedback beside it. */
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
  });
}

/** setupAccount wires the view's controls once. */
export function setupAccount() {
  submitWith('password-form', 'password.change', async (form) => {
    await api('POST', '/v1/me/password', { current: $('pw-current').value, new: $('pw-new').value });
    form.reset();
    return t('account.password.changed');
  });

  $('totp-start').addEventListener('click', (e) =>
    busy(e.currentTarget, async () => {
      note('totp-start', '', '');
      try {
        const en = await api('POST', '/v1/me/totp');
        $('totp-secret').textContent = en.secret;
        anchor('totp-url').href = en.url;
        $('totp-verify-form').hidden = false;
        $('totp-start').hidden = true;
        $('totp-code').focus();
      } catch (err) {
        note('totp-start', 'error', errorText('totp.start', err));
      }
    }),
  );

  submitWith('totp-verify-form', 'totp.verify', async (form) => {
    const rc = await api('POST', '/v1/me/totp/verify', { code: $('totp-code').value.trim() });
    form.reset();
    form.hidden = true;
    $('recovery-codes').replaceChildren(...rc.codes.map((c) => el('li', {}, el('code', { textContent: c }))));
    $('recovery').hidden = false;
    await showAccount();
    note('totp-start', 'ok', t('account.totp.turnedOn'));
    return '';
  });

  submitWith('totp-off-form', 'totp.off', async (form) => {
    await api('DELETE', '/v1/me/totp', { password: $('totp-off-password').value });
    form.reset();
    $('recovery').hidden = true;
    await showAccount();
    note('totp-start', 'ok', t('account.totp.turnedOff'));
    return '';
  });

  submitWith('token-form', 'token.create', async (form) => {
    const scopes = [...form.querySelectorAll('input[type=checkbox]:checked')].map((b) => b.value);
    const tk = await api('POST', '/v1/me/tokens', { name: $('token-name').value.trim(), scopes });
    form.reset();
    const p = $('token-created');
    p.replaceChildren(t('account.tokens.created', { token: '' }), el('code', { textContent: tk.token }));
    p.hidden = false;
    await showAccount();
    return '';
  });
}

/** leaveAccount: secrets shown once leave the page with the view. */
export function leaveAccount() {
  $('token-created').hidden = true;
  $('token-created').replaceChildren();
  $('recovery').hidden = true;
  $('recovery-codes').replaceChildren();
  $('totp-verify-form').hidden = true;
  $('totp-secret').textContent = '';
}
