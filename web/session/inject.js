// Origin: DEVICE origin (the service worker, sw.js), which holds nothing
// secret.
//
// Puts the page shim (/__t/page.js, web/session/page/) into the HTML
// documents the worker carries: one classic <script> element, so that it
// runs before any of the page's own scripts.
//
// Where: after the <head> start tag (after a <meta charset> that follows
// it), else after the <html> start tag, else after the doctype, else at the
// very start. Never before a doctype: that would throw the page into quirks
// mode. Only the first LOOKAHEAD bytes are looked at, and held back at most
// that long; a document whose first construct does not end in them (a huge
// comment, say) is left alone rather than guessed at.
//
// The bytes are scanned as windows-1252 (one character a byte), which finds
// ASCII markup in every encoding browsers parse HTML in except UTF-16, and
// UTF-16 (with its byte order mark) is scanned and written as UTF-16.

export const SHIM_TAG = '<script src="/__t/page.js"></script>';

// One origin as the agent spells it in Porthole-Device-Origins: a scheme,
// a host name, IPv4 or bracketed IPv6 address, and a port.
const ORIGIN_RE = /^https?:\/\/(?:[a-z0-9](?:[a-z0-9.-]{0,252})|\[[0-9a-f:.]{2,45}\])(?::[0-9]{1,5})?$/;

/**
 * shimTag(origins) → the shim's script element, carrying the device's own
 * origins (the agent's Porthole-Device-Origins, space-separated) for the
 * URLs the page builds at run time (page/deviceurls.js). Anything that is
 * not a plain origin is left out, so the attribute needs no escaping.
 */
export function shimTag(origins) {
  const list = String(origins || '').toLowerCase().split(/\s+/).filter((o) => ORIGIN_RE.test(o)).slice(0, 64);
  return list.length ? `<script src="/__t/page.js" data-device-origins="${list.join(' ')}"></script>` : SHIM_TAG;
}
export const LOOKAHEAD = 8192;

const latin1 = new TextDecoder('windows-1252');

/** True for a Content-Type the browser parses as an HTML document. */
export function isHTML(contentType) {
  return /^\s*text\/html\s*(;|$)/i.test(contentType || '');
}

/**
 * Finds where the shim goes in the first bytes of a document. Returns
 * {at, tag} (byte offset and the tag's bytes), {wait: true} when more
 * bytes are needed to decide (and final is false), or null to leave the
 * document alone.
 */
export function insertionPoint(bytes, final, tagText = SHIM_TAG) {
  let bom = 0;
  let enc = 'latin1';
  if (bytes.length >= 2 && bytes[0] === 0xff && bytes[1] === 0xfe) [bom, enc] = [2, 'utf-16le'];
  else if (bytes.length >= 2 && bytes[0] === 0xfe && bytes[1] === 0xff) [bom, enc] = [2, 'utf-16be'];
  else if (bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) bom = 3;
  const body = bytes.subarray(bom);
  const wide = enc !== 'latin1';
  const text = wide ? new TextDecoder(enc, { ignoreBOM: true }).decode(body.subarray(0, body.length & ~1)) : latin1.decode(body);
  const r = scan(text, final || bytes.length >= LOOKAHEAD);
  if (r === null || r === WAIT) return r === WAIT ? { wait: true } : null;
  return { at: bom + (wide ? 2 * r : r), tag: encodeTag(enc, tagText) };
}

const WAIT = -1;

/**
 * Scans the leading constructs of a document: whitespace, comments,
 * processing instructions, the doctype, <html> and <head>. Returns the
 * character offset to insert at, WAIT, or null.
 */
function scan(s, complete) {
  let i = 0;
  let doctypeEnd = -1;
  let htmlEnd = -1;
  const wsRe = /[\t\n\f\r ]*/y;
  const skipWS = () => {
    wsRe.lastIndex = i;
    wsRe.exec(s);
    i = wsRe.lastIndex;
  };
  // The end of the construct starting at i that closes with close, or
  // WAIT/null when it does not close in what we have.
  const until = (close) => {
    const j = s.indexOf(close, i);
    if (j >= 0) return j + close.length;
    return complete ? null : WAIT;
  };
  for (;;) {
    skipWS();
    if (i >= s.length) {
      if (!complete) return WAIT;
      break;
    }
    const rest = s.slice(i, i + 16).toLowerCase();
    if (!complete && s.length - i < 16 && ('<!doctype'.startsWith(rest) || '<!--'.startsWith(rest) || '<html'.startsWith(rest) || '<head'.startsWith(rest))) return WAIT;
    let end;
    if (rest.startsWith('<!--')) {
      end = until('-->');
    } else if (rest.startsWith('<!doctype')) {
      end = until('>');
      if (end !== null && end !== WAIT) doctypeEnd = end;
    } else if (rest.startsWith('<?')) {
      end = until('>');
    } else if (/^<html[\s>/]/.test(rest)) {
      end = until('>');
      if (end !== null && end !== WAIT) htmlEnd = end;
    } else if (/^<head[\s>/]/.test(rest)) {
      end = until('>');
      if (end === null || end === WAIT) return end;
      i = end;
      return afterCharset(s, i, complete);
    } else {
      break; // content, or a tag that opens the head or body implicitly
    }
    if (end === null || end === WAIT) return end;
    i = end;
  }
  const at = htmlEnd >= 0 ? htmlEnd : doctypeEnd >= 0 ? doctypeEnd : 0;
  return afterCharset(s, at, complete);
}

/**
 * A <meta charset> right at i (after whitespace) stays ahead of the shim:
 * the browser looks for it in the first 1024 bytes, and the shim must not
 * push it out.
 */
function afterCharset(s, i, complete) {
  const m = /[\t\n\f\r ]*<meta\b[^>]*>/iy;
  m.lastIndex = i;
  const r = m.exec(s);
  if (r) return /charset/i.test(r[0]) ? m.lastIndex : i;
  if (!complete) {
    // A <meta tag that has not ended yet, or the start of one.
    const rest = s.slice(i).replace(/^[\t\n\f\r ]*/, '');
    if (rest.length < 5 ? '<meta'.startsWith(rest.toLowerCase()) : /^<meta\b/i.test(rest)) return WAIT;
  }
  return i;
}

function encodeTag(enc, tag) {
  if (enc === 'latin1') return new TextEncoder().encode(tag);
  const out = new Uint8Array(tag.length * 2);
  for (let k = 0; k < tag.length; k++) {
    const c = tag.charCodeAt(k);
    if (enc === 'utf-16le') [out[2 * k], out[2 * k + 1]] = [c, 0];
    else [out[2 * k], out[2 * k + 1]] = [0, c];
  }
  return out;
}

/**
 * Returns a stream of body with the shim inserted (shimTag of origins,
 * the agent's Porthole-Device-Origins). It holds back at most
 * LOOKAHEAD bytes until it knows where; from then on chunks pass through
 * as they come.
 */
export function injectShim(body, origins = '') {
  const tagText = shimTag(origins);
  let held = new Uint8Array(0);
  let decided = false;
  const flush = (controller, final) => {
    const p = insertionPoint(held, final, tagText);
    if (p && p.wait) return;
    decided = true;
    if (p) {
      controller.enqueue(held.subarray(0, p.at));
      controller.enqueue(p.tag);
      controller.enqueue(held.subarray(p.at));
    } else if (held.length) {
      controller.enqueue(held);
    }
    held = null;
  };
  return body.pipeThrough(new TransformStream({
    transform(chunk, controller) {
      if (decided) {
        controller.enqueue(chunk);
        return;
      }
      const next = new Uint8Array(held.length + chunk.byteLength);
      next.set(held);
      next.set(chunk instanceof Uint8Array ? chunk : new Uint8Array(chunk), held.length);
      held = next;
      flush(controller, false);
    },
    flush(controller) {
      if (!decided) flush(controller, true);
    },
  }));
}
