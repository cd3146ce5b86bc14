// Strict JSON for the wire decoders, as proto.CheckJSON: JSON.parse takes the
// last of repeated keys and keeps lone UTF-16 surrogates, where two parsers of
// one message must never disagree. checkJSON throws for text that repeats a
// key in one object (compared as Go's encoding/json matches keys, without
// regard to case) or holds a lone surrogate, escaped or not. Invalid UTF-8
// never reaches here: the browser fails a WebSocket whose text frame is not
// UTF-8, and the tunnel decodes heads with a fatal TextDecoder. Syntax errors
// are left to JSON.parse.

/** Go's key folding: ToLower(ToUpper(r)) for every code point. */
function fold(k) {
  let out = '';
  for (const ch of k) out += ch.toUpperCase().toLowerCase();
  return out;
}

/**
 * Throws an Error whose .reason says what is wrong ('duplicate key' or
 * 'lone surrogate'), or returns nothing.
 */
export function checkJSON(text) {
  if (!text.isWellFormed()) throw strictError('lone surrogate', 'JSON text holds a lone UTF-16 surrogate');
  const stack = []; // per open object: {keys: Set, wantKey}; arrays: null
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    const top = stack.length ? stack[stack.length - 1] : null;
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      let s;
      try {
        s = JSON.parse(text.slice(i, j + 1));
      } catch {
        return; // malformed: JSON.parse reports it
      }
      if (!s.isWellFormed()) throw strictError('lone surrogate', 'JSON string escapes a lone UTF-16 surrogate');
      if (top && top.wantKey) {
        const k = fold(s);
        if (top.keys.has(k)) throw strictError('duplicate key', `JSON object repeats the key ${JSON.stringify(s).slice(0, 40)}`);
        top.keys.add(k);
        top.wantKey = false;
      }
      i = j;
    } else if (c === '{') {
      stack.push({ keys: new Set(), wantKey: true });
    } else if (c === '[') {
      stack.push(null);
    } else if (c === '}' || c === ']') {
      stack.pop();
    } else if (c === ',' && top) {
      top.wantKey = true;
    }
  }
}

function strictError(reason, message) {
  return Object.assign(new Error(message), { reason });
}
