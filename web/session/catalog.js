// Origin: SHELL and DEVICE origins, and the app's, which serves this same
// file at /session/catalog.js (web.go): pure, nothing secret.
//
// The machinery of a message catalog, shared by the app's
// (app/messages.js) and the session window's (session/messages.js): each
// keeps its own keys and its own active language, and gets t, has and
// useCatalog from catalogOf. {name} placeholders; key.one / key.other
// chosen by the locale's plural rules for a count.

/** format('Hello {name}', {name: 'x'}) → 'Hello x'; unknown placeholders stay as they are. */
export function format(text, params = {}) {
  return text.replace(/\{(\w+)\}/g, (m, k) => (Object.hasOwn(params, k) ? String(params[k]) : m));
}

/**
 * catalogOf(en) → {useCatalog, has, t} over the English catalog en, which
 * stays the fallback of every translation.
 * @param {Record<string, string>} en
 */
export function catalogOf(en) {
  /** The active catalog; a translation would replace it. */
  let catalog = en;
  let locale = 'en';

  /** useCatalog(messages, locale): switch the language (keys missing there fall back to English). */
  function useCatalog(messages, lang) {
    catalog = { ...en, ...messages };
    locale = lang || 'en';
  }

  /** has(key) reports whether the catalog has key. */
  function has(key) {
    return Object.hasOwn(catalog, key);
  }

  /**
   * t(key, params) → the text of key with its placeholders filled. A
   * params.count picks key.one / key.other by the locale's plural rules. A
   * missing key returns the key itself (a test catches it first).
   */
  function t(key, params = {}) {
    let k = key;
    if (typeof params.count === 'number' && !has(k)) {
      const form = new Intl.PluralRules(locale).select(params.count);
      k = has(`${key}.${form}`) ? `${key}.${form}` : `${key}.other`;
    }
    return has(k) ? format(catalog[k], params) : key;
  }

  return { useCatalog, has, t };
}
