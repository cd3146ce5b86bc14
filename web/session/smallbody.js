// Origin: SHELL origin (the session window); pure, holds nothing.
//
// Small response bodies travel to the service worker with their head, as
// one transferred ArrayBuffer, instead of as a transferred stream. A
// transferred ReadableStream costs the worker a pipe between the session
// window's process and its own, a message per chunk and one for the end,
// then a pipe into the page's Response: on the 40-subresource page of the
// bench (issue 21) that was most of each subresource's body time (25–75 ms
// against 4–7 ms directly on a loaded machine). The agent sends a small
// body right behind its head, so waiting for its end costs nothing; a body
// that is larger than SMALL_BODY, or still not ended after SMALL_WAIT (a
// stream, a long poll), goes on as a stream with what was read first, so
// nothing is lost and nothing waits longer than SMALL_WAIT.

/** Bodies up to this size may be sent whole with their head. */
export const SMALL_BODY = 64 << 10;
/** How long the head waits for a small body's end at most (ms). */
export const SMALL_WAIT = 20;

// Content types that stream by design: never held back.
const STREAMING = new Set(['text/event-stream', 'multipart/x-mixed-replace']);

/**
 * Whether a response (its head's header, {Canonical-Key: [values]}) may
 * be collected: not a streaming type, not declared larger than limit.
 */
export function collectable(header, limit = SMALL_BODY) {
  const type = String(header?.['Content-Type']?.[0] || '').split(';')[0].trim().toLowerCase();
  if (STREAMING.has(type)) return false;
  const len = header?.['Content-Length']?.[0];
  return len === undefined || !(Number(len) > limit);
}

/**
 * Reads stream until its end if it ends within limit bytes and wait ms.
 * Returns {bytes} (an ArrayBuffer of its own, transferable) when it did;
 * else {stream}: a stream that gives what was read, then the rest.
 */
export async function collectSmall(stream, { limit = SMALL_BODY, wait = SMALL_WAIT } = {}) {
  const reader = stream.getReader();
  const parts = [];
  let size = 0;
  let timer;
  const late = new Promise((resolve) => {
    timer = setTimeout(() => resolve(null), wait);
  });
  // A read that lost the race to the timer is kept: its chunk belongs to
  // the stream that carries on.
  let pending = null;
  try {
    for (;;) {
      pending = reader.read();
      const r = await Promise.race([pending, late]);
      if (r === null) break; // too slow: carry on as a stream
      pending = null;
      if (r.done) {
        const out = new Uint8Array(size);
        let off = 0;
        for (const p of parts) {
          out.set(p, off);
          off += p.byteLength;
        }
        return { bytes: out.buffer };
      }
      parts.push(r.value);
      size += r.value.byteLength;
      if (size > limit) break;
    }
  } catch (err) {
    pending = Promise.reject(err);
    pending.catch(() => {}); // handled by the stream's pull below
  } finally {
    clearTimeout(timer);
  }
  return { stream: carryOn(reader, parts, pending) };
}

/** A stream of parts, then of reader (its read in flight first). */
function carryOn(reader, parts, pending) {
  return new ReadableStream({
    start(c) {
      for (const p of parts) c.enqueue(p);
    },
    async pull(c) {
      const next = pending || reader.read();
      pending = null;
      const r = await next;
      if (r.done) c.close();
      else c.enqueue(r.value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}
