// Origin: DEVICE origin (the service worker, sw.js), which holds nothing
// secret.
//
// The small pages the worker answers with in place of the device's: session
// ended, the device or tunnel failed, a redirect off the device. They are
// built here as strings with every dynamic part escaped, because messages can
// come from the agent and the device. They load only the shell's stylesheet.
// Their text is the session catalog's (messages.js).

import { t } from './messages.js';

const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for HTML element content and quoted attributes. */
export function escapeHTML(s) {
  return String(s).replace(/[&<>"']/g, (c) => ESC[c]);
}

/** A complete HTML page: title, a paragraph, and an optional code line. */
export function noticePage({ title, text, code }) {
  return (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">' +
    '<meta name="viewport" content="width=device-width, initial-scale=1">' +
    `<title>${escapeHTML(title)}</title><link rel="stylesheet" href="/__t/notice.css"></head>` +
    `<body><main class="notice"><h1>${escapeHTML(title)}</h1><p>${escapeHTML(text)}</p>` +
    (code ? `<p class="code">${escapeHTML(t('ended.code'))}<code>${escapeHTML(code)}</code></p>` : '') +
    '</main></body></html>'
  );
}

/** The page every request gets once the session is over (SECURITY 14). */
export function endedPage(reason) {
  return noticePage({
    title: t('ended.title'),
    text: t('page.ended.text'),
    code: reason || 'session_ended',
  });
}

/** The page for a request the tunnel could not carry. */
export function errorPage(code, message) {
  return noticePage({
    title: t('page.error.title'),
    text: message || t('page.error.text'),
    code,
  });
}

/** The page for a redirect that would leave the session. */
export function offsitePage(url) {
  return noticePage({
    title: t('page.offsite.title'),
    text: t('page.offsite.text', { url }),
    code: 'offsite_redirect',
  });
}

/**
 * The page for a link, form or window.open of the device's page that
 * leads outside the device (page/offsite.js): the session does not open
 * it, and the agent never fetches it.
 */
export function offsiteLinkPage(url) {
  return noticePage({
    title: t('page.offsiteLink.title'),
    text: t('page.offsiteLink.text', { url: String(url).slice(0, 300) || t('page.offsiteLink.anotherSite') }),
    code: 'offsite_link',
  });
}
