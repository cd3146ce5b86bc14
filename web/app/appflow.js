// The app's decisions (app.js), without the browser: where to go after
// signing in, what the address brings besides a route, how the sign-in
// note and the window's title read, what the MFA step sends and when it
// must start again, the operator's branding, and what a move between views
// clears. app.js holds the state and the DOM and asks these functions.

import { t } from './messages.js';
import { parseRoute, routeHash } from './routes.js';

// The single sign-on failures the server names in #signin?sso=<code>.
export const SSO_FAILURES = ['denied', 'state', 'unavailable', 'conflict', 'disabled'];

/** Where to go after signing in (?next=): only our own OAuth authorization endpoint. */
export function nextURL(search) {
  const next = new URLSearchParams(search).get('next') || '';
  return next.startsWith('/oauth/authorize?') ? next : '';
}

/**
 * What the address brings besides a route: a password link's secret
 * (#password/<secret>) or a failed single sign-on (#signin?sso=<code>,
 * as the catalog key that explains it). take is true when the fragment
 * must leave the address at once, so the secret stays in no history entry.
 */
export function hashExtras(hash) {
  const h = String(hash || '');
  if (h.startsWith('#password/')) return { secret: h.slice('#password/'.length), reason: '', take: true };
  if (h.startsWith('#signin?')) {
    const code = new URLSearchParams(h.slice('#signin?'.length)).get('sso') || '';
    return { secret: '', reason: SSO_FAILURES.includes(code) ? `signin.sso.${code}` : '', take: true };
  }
  return { secret: '', reason: '', take: false };
}

/** The window's title: the view's, then the product's name. */
export function pageTitle(view, brandName) {
  return view ? `${t(`title.${view}`)} · ${brandName}` : brandName;
}

/** The operator's branding (/brand.json): its name (fallback when none) and logo path ('' when none). */
export function brandOf(b, fallback) {
  return {
    name: typeof b?.name === 'string' && b.name ? b.name : fallback,
    logo: typeof b?.logo === 'string' && b.logo ? `/${b.logo}` : '',
  };
}

/**
 * The sign-in panel's note: {level, text}. Why the user is here (their
 * login ended, they signed out, single sign-on failed: an error), or that
 * signing in continues to a device (next).
 */
export function signInNote(reasonKey, next) {
  const reason = reasonKey || (next ? 'signin.continue' : '');
  return { level: reason.startsWith('signin.sso.') ? 'error' : 'info', text: reason ? t(reason) : '' };
}

/** What the second step of sign-in sends: the code, or a recovery code instead. */
export function mfaBody(mfaToken, value, recovery) {
  return recovery ? { mfaToken, recoveryCode: value } : { mfaToken, code: value };
}

/** True when the MFA step failed because the password step expired: sign in again from the start. */
export function mfaExpired(err) {
  return err?.status === 401 && /start again/.test(err.message);
}

/**
 * A move to the address hash, coming from the view lastView (''
 * after signing in): the route, its canonical hash (replace: the address
 * must become it without a history entry), its key, whether the old view
 * must be left (its notes cleared, its timers stopped) and whether focus
 * moves to the new view's top (moved: a change of view, not the first).
 */
export function viewChange(hash, admin, lastView) {
  const route = parseRoute(hash, { admin: !!admin });
  const canonical = routeHash(route);
  const key = `${route.view}/${route.section}`;
  return { route, canonical, replace: hash !== canonical, key, leave: key !== lastView, moved: !!lastView && key !== lastView };
}
