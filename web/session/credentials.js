// Origin: SHELL origin (the session window, which holds the session's
// secrets); the credentials it collects never reach the device origin.
//
// HTTP Basic and Digest authentication of the device. A 401 that a service
// worker builds raises no browser prompt, so the shell asks for the
// credentials itself, once per session, in its own dialog (never in the
// device's frame), and hands them to the agent in one request
// (headers.js CREDENTIALS_HEADER). The agent keeps them for the session and
// answers the device's challenges; the shell forgets them at once.

import { t } from './messages.js';

/** The first Basic or Digest challenge of a response head, or null. */
export function authChallenge(header) {
  for (const [name, values] of Object.entries(header || {})) {
    if (name.toLowerCase() !== 'www-authenticate') continue;
    for (const v of values) {
      const m = /^\s*(basic|digest)\b/i.exec(v);
      if (!m) continue;
      const realm = /realm="((?:[^"\\]|\\.)*)"/i.exec(v);
      return { scheme: m[1].toLowerCase(), realm: realm ? realm[1].replace(/\\(.)/g, '$1').slice(0, 200) : '' };
    }
  }
  return null;
}

/** base64 of the UTF-8 "user:password", or null when user has a colon. */
export function encodeCredentials(user, password) {
  if (user.includes(':')) return null;
  let s = '';
  for (const b of new TextEncoder().encode(`${user}:${password}`)) s += String.fromCharCode(b);
  return btoa(s);
}

/**
 * Shows the credentials dialog in the shell's document and resolves with
 * the encoded credentials, or null if the technician cancels. Only
 * textContent is set: the realm comes from the device.
 */
export function askCredentials(doc, { realm, device, retry }) {
  return new Promise((resolve) => {
    const dialog = doc.createElement('dialog');
    dialog.className = 'credentials';
    const form = doc.createElement('form');
    const h = doc.createElement('h2');
    h.textContent = t('credentials.heading');
    const p = doc.createElement('p');
    p.textContent = t(realm ? 'credentials.textRealm' : 'credentials.text', { device: device || t('credentials.device'), realm });
    const err = doc.createElement('p');
    err.className = 'error';
    err.textContent = retry ? t('credentials.refused') : '';
    err.hidden = !retry;
    const field = (label, type, name, autocomplete) => {
      const l = doc.createElement('label');
      l.textContent = label;
      const i = doc.createElement('input');
      i.type = type;
      i.name = name;
      i.autocomplete = autocomplete;
      i.required = name === 'username';
      l.append(i);
      return [l, i];
    };
    const [ul, user] = field(t('credentials.username'), 'text', 'username', 'username');
    const [pl, pass] = field(t('credentials.password'), 'password', 'password', 'current-password');
    const buttons = doc.createElement('div');
    buttons.className = 'buttons';
    const cancel = doc.createElement('button');
    cancel.type = 'button';
    cancel.textContent = t('credentials.cancel');
    const ok = doc.createElement('button');
    ok.type = 'submit';
    ok.className = 'primary';
    ok.textContent = t('credentials.submit');
    buttons.append(cancel, ok);
    form.append(h, p, err, ul, pl, buttons);
    dialog.append(form);
    let done = false;
    const finish = (value) => {
      if (done) return;
      done = true;
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    // The shell's policy has form-action 'none': the form never submits.
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const enc = encodeCredentials(user.value, pass.value);
      if (!enc) {
        err.textContent = t('credentials.colon');
        err.hidden = false;
        return;
      }
      finish(enc);
    });
    cancel.addEventListener('click', () => finish(null));
    dialog.addEventListener('cancel', () => finish(null));
    doc.body.append(dialog);
    dialog.showModal();
    user.focus();
  });
}
