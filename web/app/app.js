// The app: sign in (with a second factor when the account has one), then
// the views — Devices, Jobs, Account and, for admins, Admin in sections —
// each at its own address (routes.js), so the back button and reloads
// work. Navigating clears every feedback note. The product name and logo
// come from the operator's branding (/brand.json); every text from the
// message catalog (messages.js).
//
// The login lives in an HttpOnly cookie the page never sees; every request
// is same-origin. Every value from the server is set as text, never HTML.

import { leaveAccount, setupAccount, showAccount } from './account.js';
import { leaveAdmin, setupAdmin, showAdmin } from './admin.js';
import { adminSites, leaveSite, showSite } from './customer.js';
import { showDevices, stopDevices } from './devices.js';
import { setupJobs, showJobs } from './jobs.js';
import { applyMessages, errorText, t } from './messages.js';
import { VIEWS } from './routes.js';
import { brandOf, hashExtras, mfaBody, mfaExpired, nextURL as nextOf, pageTitle, signInNote, viewChange } from './appflow.js';
import { leaveWebhooks, mayManageWebhooks, setupWebhooks, showWebhooks } from './webhooks.js';
import { $, anchor, api, busy, clearNotes, note, onUnauthorized } from './ui.js';

let me = null;
let mfaToken = '';
let linkSecret = '';
let signInOptions = { localLogin: true };
let brandName = t('app.name');
let lastView = '';

// ---- branding ----

async function loadBrand() {
  try {
    const res = await fetch('/brand.json', { cache: 'no-store' });
    const b = brandOf(await res.json(), brandName);
    brandName = b.name;
    $('brand-name').textContent = brandName;
    if (b.logo) {
      const img = $('brand-logo');
      img.src = b.logo;
      img.hidden = false;
    }
  } catch {
    // Porthole's own name stays.
  }
  setTitle();
}

function setTitle(view) {
  document.title = pageTitle(view, brandName);
}

// ---- sign in ----

/** Where to go after signing in: only our own OAuth authorization endpoint. */
function nextURL() {
  return nextOf(location.search);
}

function showSignIn(reasonKey) {
  me = null;
  stopDevices();
  leave();
  clearNotes();
  for (const v of VIEWS) $(v).hidden = true;
  $('nav').hidden = true;
  $('user-box').hidden = true;
  $('who').textContent = '';
  $('password-link').hidden = true;
  $('signin').hidden = false;
  $('login-form').hidden = !signInOptions.localLogin;
  $('mfa-form').hidden = true;
  const sso = signInOptions.sso;
  $('sso-box').hidden = !sso;
  $('sso-or').hidden = !signInOptions.localLogin;
  if (sso) {
    $('sso-button').textContent = t('signin.sso', { name: sso.name });
    anchor('sso-button').href = sso.url;
  }
  if (!signInOptions.localLogin) $('signin').querySelector('header p').textContent = t('signin.ssoOnly');
  const n = signInNote(reasonKey, nextURL());
  note('signin', n.level, n.text);
  setTitle('signin');
  if (signInOptions.localLogin) $('login-username').focus();
  else if (sso) $('sso-button').focus();
}

/** loadSignInOptions: whether password sign-in is on, and the SSO button. */
async function loadSignInOptions() {
  try {
    signInOptions = await api('GET', '/v1/signin');
  } catch {
    // An older server: password sign-in only.
  }
}

/**
 * takeHash reads what the address brings besides a route — a password
 * link's secret (#password/<secret>) or a failed single sign-on
 * (#signin?sso=<code>) — and takes it out of the address at once, so the
 * secret stays in no history entry.
 */
function takeHash() {
  const x = hashExtras(location.hash);
  if (x.secret) linkSecret = x.secret;
  if (x.take) history.replaceState(null, '', location.pathname + location.search);
  return x.reason;
}

function showPasswordLink() {
  for (const v of VIEWS) $(v).hidden = true;
  $('signin').hidden = true;
  $('password-link').hidden = false;
  setTitle('password');
  $('password-link-new').focus();
}

function signedIn(user) {
  me = user;
  const next = nextURL();
  if (next) {
    location.assign(next);
    return;
  }
  clearNotes();
  $('signin').hidden = true;
  $('password-link').hidden = true;
  $('nav').hidden = false;
  $('user-box').hidden = false;
  $('nav-admin').hidden = !me.admin;
  $('nav-webhooks').hidden = !mayManageWebhooks(me);
  $('nav-site').hidden = adminSites(me).length === 0;
  $('who').textContent = me.displayName || me.name;
  $('who').title = t('nav.signedInAs', { name: me.displayName || me.name });
  lastView = '';
  route();
}

onUnauthorized(() => {
  if (me) showSignIn('signin.ended');
});

function setupSignIn() {
  $('login-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    note('login-form', '', '');
    note('signin', '', '');
    const username = $('login-username').value.trim();
    const password = $('login-password').value;
    await busy(e.submitter || $('login-submit'), async () => {
      try {
        const res = await api('POST', '/v1/login', { username, password });
        $('login-password').value = '';
        if (res.mfaRequired) {
          mfaToken = res.mfaToken;
          $('login-form').hidden = true;
          $('mfa-form').hidden = false;
          $('mfa-code').focus();
          return;
        }
        signedIn(res.user);
      } catch (err) {
        note('login-form', 'error', errorText('login', err));
      }
    });
  });

  $('mfa-recovery').addEventListener('change', (e) => {
    $('mfa-label').textContent = t(/** @type {HTMLInputElement} */ (e.target).checked ? 'signin.recoveryCode' : 'signin.code');
  });

  $('mfa-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    note('mfa-form', '', '');
    const value = $('mfa-code').value.trim();
    const body = mfaBody(mfaToken, value, $('mfa-recovery').checked);
    await busy(e.submitter || $('mfa-submit'), async () => {
      try {
        const res = await api('POST', '/v1/login/mfa', body);
        $('mfa-code').value = '';
        mfaToken = '';
        signedIn(res.user);
      } catch (err) {
        $('mfa-code').value = '';
        // The password step expired: back to it, saying so.
        if (mfaExpired(err)) {
          showSignIn();
          note('login-form', 'error', `${t('action.mfa')} ${t('err.mfa.expired')}`);
          return;
        }
        note('mfa-form', 'error', errorText('mfa', err));
      }
    });
  });

  $('password-link-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    note('password-link', '', '');
    const password = $('password-link-new').value;
    if (password !== $('password-link-again').value) {
      note('password-link', 'error', t('password.mismatch'));
      return;
    }
    await busy(e.submitter || $('password-link-submit'), async () => {
      try {
        const res = await api('POST', '/v1/password-link', { token: linkSecret, password });
        linkSecret = '';
        /** @type {HTMLFormElement} */ ($('password-link-form')).reset();
        $('password-link').hidden = true;
        signedIn(res.user);
      } catch (err) {
        note('password-link', 'error', errorText('link.redeem', err));
      }
    });
  });

  $('signout').addEventListener('click', (e) =>
    busy(e.currentTarget, async () => {
      try {
        await api('POST', '/v1/logout');
      } catch {
        // signed out anyway as far as this page is concerned
      }
      showSignIn('signin.signedOut');
    }),
  );
}

// ---- views ----

/** leave: what a view must not keep on the page once the user moves on. */
function leave() {
  stopDevices();
  leaveSite();
  leaveAccount();
  leaveAdmin();
  leaveWebhooks();
}

function route() {
  if (!me) return;
  const { route: r, canonical, replace, key, leave: leaving, moved } = viewChange(location.hash, me.admin, lastView);
  if (replace) {
    // Old or unknown addresses (#admin, #nowhere) become the canonical one
    // without adding a history entry.
    history.replaceState(null, '', canonical);
  }
  if (leaving) {
    clearNotes();
    leave();
  }
  lastView = key;
  for (const v of VIEWS) {
    $(v).hidden = v !== r.view;
    $(`nav-${v}`).setAttribute('aria-current', v === r.view ? 'page' : 'false');
  }
  setTitle(r.view);
  if (r.view === 'devices') showDevices(me);
  else if (r.view === 'jobs') showJobs(me, r.id);
  else if (r.view === 'site') showSite(me);
  else if (r.view === 'account') showAccount();
  else if (r.view === 'webhooks') showWebhooks(me);
  else showAdmin(me, r.section);
  // Keyboard and screen-reader users land at the new view's top.
  if (moved) {
    window.scrollTo(0, 0);
    $('main').focus({ preventScroll: true });
  }
}

window.addEventListener('hashchange', route);

// ---- start ----

async function start() {
  applyMessages(document);
  setupSignIn();
  setupJobs();
  setupAccount();
  setupAdmin();
  setupWebhooks();
  const reason = takeHash();
  await Promise.all([loadBrand(), loadSignInOptions()]);
  if (linkSecret) {
    showPasswordLink();
    return;
  }
  try {
    signedIn(await api('GET', '/v1/me'));
  } catch {
    showSignIn(reason);
  }
}

start();
