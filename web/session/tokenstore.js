// Where the session window keeps its token between reloads: split in two,
// neither half of any use alone. A one-time pad of the token's length
// lives in window.name, the token XOR the pad in sessionStorage.
//
// Why not sessionStorage alone: Chromium copies a tab's whole
// sessionStorage (every origin's) into a popup opened from it — also from
// the device's page in this window's frame (measured in Chromium 156, COOP
// or not). A session window the device's page opens that way would find the
// token, present the bind cookie (cookies are the browser's) and, being
// "the same window" to signaling, take the session over. window.name is
// the window's own: it survives a reload, is not copied into popups, and is
// cleared when the tab navigates to another origin (COOP same-origin puts
// that in a new browsing context group).
//
// Pure but for the two stores, which are passed in, for node --test.

const NAME_PREFIX = 'porthole-pad:';
const KEY = 'porthole.session-token';

const enc = new TextEncoder();
const dec = new TextDecoder();

function b64(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function unb64(s) {
  try {
    return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

/** Keeps token for this window: win is the window (its name), store its sessionStorage. */
export function saveToken(win, store, token, random = (n) => crypto.getRandomValues(new Uint8Array(n))) {
  const t = enc.encode(token);
  const pad = random(t.length);
  const sealed = t.map((b, i) => b ^ pad[i]);
  win.name = NAME_PREFIX + b64(pad);
  store.setItem(KEY, b64(sealed));
}

/** The token saveToken kept in this very window, or '' (another window's half alone is noise). */
export function loadToken(win, store) {
  const name = typeof win.name === 'string' ? win.name : '';
  if (!name.startsWith(NAME_PREFIX)) return '';
  const pad = unb64(name.slice(NAME_PREFIX.length));
  const sealed = unb64(store.getItem(KEY) || '');
  if (!pad || !sealed || pad.length !== sealed.length || !pad.length) return '';
  return dec.decode(sealed.map((b, i) => b ^ pad[i]));
}

/** Forgets the token in both places. */
export function forgetToken(win, store) {
  store.removeItem(KEY);
  if (typeof win.name === 'string' && win.name.startsWith(NAME_PREFIX)) win.name = '';
}
