// Request bodies kept for a repeat after the device's login (issue 13): a
// POST or PUT that meets a Basic or Digest 401 is sent again, with its body,
// once the technician gave credentials in the shell's dialog. The shell keeps
// the body, not the agent: bodies up to REPLAY_LIMIT are read before the
// request head is sent anyway (tunnel.js PREBUFFER, so the device gets a
// Content-Length), and keeping them until the answer's head costs nothing
// more. A larger body streams and cannot be repeated; the toolbar says so.

import { PREBUFFER } from './tunnel.js';

export const REPLAY_LIMIT = PREBUFFER;

/**
 * Reads up to limit bytes of stream. Returns {fresh, replayable}: fresh()
 * gives a stream of the whole body — a new one at every call when the body
 * fit (replayable), else once (the part read, then the rest of stream).
 */
export async function keepBody(stream, limit = REPLAY_LIMIT) {
  const reader = stream.getReader();
  const parts = [];
  let size = 0;
  for (;;) {
    const r = await reader.read();
    if (r.done) break;
    const c = r.value instanceof Uint8Array ? r.value : new Uint8Array(r.value);
    parts.push(c);
    size += c.byteLength;
    if (size > limit) {
      // Too large to keep: hand on what was read, then the rest, once.
      let used = false;
      return {
        replayable: false,
        size,
        fresh() {
          if (used) return null;
          used = true;
          let i = 0;
          return new ReadableStream({
            async pull(ctl) {
              if (i < parts.length) return ctl.enqueue(parts[i++]);
              const n = await reader.read();
              if (n.done) ctl.close();
              else ctl.enqueue(n.value);
            },
            cancel(why) {
              return reader.cancel(why);
            },
          });
        },
      };
    }
  }
  const bytes = new Uint8Array(size);
  let off = 0;
  for (const p of parts) {
    bytes.set(p, off);
    off += p.byteLength;
  }
  return {
    replayable: true,
    size,
    fresh: () => new ReadableStream({
      start(ctl) {
        if (bytes.byteLength) ctl.enqueue(bytes.slice());
        ctl.close();
      },
    }),
  };
}
