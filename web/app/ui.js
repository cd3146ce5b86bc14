// What every view of the app builds with: DOM elements from values (always
// as text, never HTML), calls to the API with errors as stable codes,
// feedback shown next to the control that caused it, busy buttons, and
// lists updated in place so focus and open details survive a refresh.

import { t } from './messages.js';

/** An API error: the HTTP status and the stable code (proto/errors.go). */
export class APIError extends Error {
  constructor(status, code, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code || `http_${status}`;
  }
}

const hooks = { unauthorized: null };

/** onUnauthorized(fn): fn runs when a call finds the login gone. */
export function onUnauthorized(fn) {
  hooks.unauthorized = fn;
}

/**
 * api(method, path, body) → the JSON answer, or throws an APIError (code
 * 'network' when the server did not answer). The server's message is
 * kept on the error for the console only.
 */
export async function api(method, path, body) {
  let res;
  try {
    res = await fetch(path, {
      method,
      headers: body ? { 'Content-Type': 'application/json' } : {},
      body: body ? JSON.stringify(body) : undefined,
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch (err) {
    throw new APIError(0, 'network', String(err?.message || err));
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: the status says enough
  }
  if (!res.ok) {
    const err = new APIError(res.status, data?.code, data?.message || '');
    console.info(`${method} ${path}: ${res.status} ${err.code}${err.message ? `: ${err.message}` : ''}`);
    const session = path === '/v1/login' || path === '/v1/login/mfa' || path.startsWith('/v1/me/');
    if (res.status === 401 && !session && hooks.unauthorized) hooks.unauthorized();
    throw err;
  }
  return data;
}

/** el('td', {className: 'x'}, 'text', child…): a DOM element; strings become text. */
export function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null) continue;
    if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k === 'attrs') for (const [a, av] of Object.entries(v)) e.setAttribute(a, av);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e[k] = v;
  }
  e.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return e;
}

/**
 * The element with this id. Most callers read a form field, so that is the
 * type the checker assumes unless the caller names another.
 * @template {HTMLElement} [T=HTMLInputElement]
 * @param {string} id
 * @returns {T}
 */
export const $ = (id) => /** @type {T} */ (document.getElementById(id));

/** The link with this id. @param {string} id */
export const anchor = (id) => /** @type {HTMLAnchorElement} */ (document.getElementById(id));

// ---- feedback next to its control ----
//
// A note belongs to a key: a form's id, or "device:<id>", "agent:<id>"…
// for one row. It shows in the element with data-note="key", which sits
// beside the control. Rows re-rendered by a refresh find their note again;
// navigating to another view clears every note.

const notes = new Map();

/** note(key, kind, text, link): show text ('ok' or 'error') beside key's control; '' clears. */
export function note(key, kind, text, link) {
  if (text) notes.set(key, { kind, text, link });
  else notes.delete(key);
  for (const slot of document.querySelectorAll(`[data-note="${CSS.escape(key)}"]`)) paintNote(slot);
}

function paintNote(slot) {
  const n = notes.get(slot.dataset.note);
  slot.replaceChildren();
  slot.hidden = !n;
  if (!n) {
    delete slot.dataset.kind;
    return;
  }
  slot.dataset.kind = n.kind;
  slot.append(n.text);
  if (n.link) {
    slot.append(' ', el('a', { href: n.link.href, target: '_blank', rel: 'noopener noreferrer', textContent: n.link.text }));
  }
}

/** noteSlot(key): the element a row's note shows in. */
export function noteSlot(key) {
  const slot = el('p', { className: 'feedback', dataset: { note: key }, attrs: { role: 'status', 'aria-live': 'polite' } });
  paintNote(slot);
  return slot;
}

/** paintNotes(root): fill the note slots under root (after rendering). */
export function paintNotes(root) {
  for (const slot of root.querySelectorAll('[data-note]')) paintNote(slot);
}

/** clearNotes(): forget every note (navigation). */
export function clearNotes() {
  notes.clear();
  paintNotes(document);
}

// ---- busy buttons ----

/**
 * busy(button, fn): runs fn with button showing it waits (aria-busy,
 * disabled) and returns fn's result. Double clicks do nothing meanwhile.
 */
export async function busy(button, fn) {
  if (!button) return fn();
  if (button.getAttribute('aria-busy') === 'true') return undefined;
  const wasDisabled = button.disabled;
  button.setAttribute('aria-busy', 'true');
  button.disabled = true;
  try {
    return await fn();
  } finally {
    button.removeAttribute('aria-busy');
    if (button.isConnected) button.disabled = wasDisabled;
  }
}

// ---- lists updated in place ----

/**
 * reconcile(container, items, key, signature, render): make container's
 * children the rendering of items, keeping the element of every item
 * whose signature did not change (focus, open details and notes stay).
 */
export function reconcile(container, items, key, signature, render) {
  const old = new Map();
  for (const c of container.children) if (c.dataset.key) old.set(c.dataset.key, c);
  const next = items.map((item) => {
    const k = key(item);
    const sig = signature(item);
    const prev = old.get(k);
    if (prev && prev.dataset.sig === sig) return prev;
    const node = render(item);
    node.dataset.key = k;
    node.dataset.sig = sig;
    if (prev) {
      // Keep what the user opened, and focus, across the re-render.
      for (const d of prev.querySelectorAll('details[open][data-keep]')) {
        const same = node.querySelector(`details[data-keep="${CSS.escape(d.dataset.keep)}"]`);
        if (same) same.open = true;
      }
      const focused = prev.contains(document.activeElement) ? /** @type {HTMLElement} */ (document.activeElement)?.dataset?.focus : '';
      if (focused) queueMicrotask(() => node.querySelector(`[data-focus="${CSS.escape(focused)}"]`)?.focus());
    }
    return node;
  });
  // Move nodes only where the order changed, so focus is not lost.
  next.forEach((node, i) => {
    if (container.children[i] !== node) container.insertBefore(node, container.children[i] || null);
  });
  while (container.children.length > next.length) container.lastElementChild.remove();
  paintNotes(container);
}

// ---- empty states ----

/** emptyState(titleKey, bodyKey): a block that says what to do. */
export function emptyState(titleKey, bodyKey) {
  return el('div', { className: 'empty' }, titleKey ? el('p', { className: 'empty-title', textContent: t(titleKey) }) : null, el('p', { textContent: t(bodyKey) }));
}

// ---- dates ----

export const when = (iso) => (iso ? new Date(iso).toLocaleString() : '');
export const clock = (iso) => (iso ? new Date(iso).toLocaleTimeString() : '');
