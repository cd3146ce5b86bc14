// Rejoining signaling after the shell's connection closed (shell origin).
// A signaling node that drains (a rolling restart, proto/drain.go) tells
// the window to reconnect and closes its socket with 1012; the node the
// agent reaches next serves the session from then on. The window rejoins
// as the Go technician does (agent/technician/session.go, resume): the
// session socket again, hello, and session.ready, with the same token and
// the same bind cookie (HttpOnly, sent by the browser), so signaling's
// binding rules decide as for a reload: a copied token or a second window
// is still refused. The peer connection is not touched: the data path
// never needed signaling.
//
// Pure of the browser: the socket comes from a factory, the clock from
// timers, so node --test drives it.

export const RESUME_TIMEOUT = 60_000; // technician.ResumeTimeout
export const ATTEMPT_TIMEOUT = 10_000; // one attempt, dial to session.ready
export const FIRST_WAIT = 100;
export const MAX_WAIT = 1_000;
export const MAX_HINT = 5_000; // a drain's retry hint is followed up to this

// Refusals that another attempt would only repeat.
const FINAL = new Set(['session_in_use', 'unauthorized', 'forbidden']);

/** The wait before attempt n (1-based) after the first: doubling, capped. */
export function backoff(n) {
  return Math.min(FIRST_WAIT * 2 ** Math.max(0, n - 1), MAX_WAIT);
}

/** The wait before the first attempt: a drain's hint, bounded; else none. */
export function firstWait(drain) {
  const ms = Number(drain?.retryAfterMs);
  return Number.isFinite(ms) && ms > 0 ? Math.min(ms, MAX_HINT) : 0;
}

/** Whether an error answer to a rejoin is final (not worth retrying). */
export function finalRefusal(code) {
  return FINAL.has(code);
}

/**
 * Rejoins: open() makes a signaling connection (signaling.js Signaling);
 * resolves {sig} with the connection that got session.ready, {ended}
 * with the session.end payload if signaling ended the session meanwhile,
 * or {gaveUp, error} (refused for good, timed out, or stopped()).
 */
export async function rejoin({ open, drain, stopped = () => false, now = () => Date.now(), timers = globalThis, onAttempt = (/** @type {number} */ _n) => {} }) {
  const deadline = now() + RESUME_TIMEOUT;
  let wait = firstWait(drain);
  let lastError = null;
  for (let n = 1; ; n++) {
    if (wait > 0) await new Promise((resolve) => timers.setTimeout(resolve, Math.min(wait, Math.max(0, deadline - now()))));
    if (stopped()) return { gaveUp: true, error: lastError };
    if (now() >= deadline) return { gaveUp: true, error: lastError || new Error('signaling could not be rejoined') };
    onAttempt(n);
    const r = await attempt(open, timers);
    if (r.sig || r.ended) {
      if (stopped()) r.sig?.close();
      return stopped() ? { gaveUp: true, error: null } : r;
    }
    lastError = r.error;
    if (r.final) return { gaveUp: true, error: r.error };
    wait = backoff(n);
  }
}

/** One attempt: {sig}, {ended}, or {error, final}. */
function attempt(open, timers) {
  return new Promise((resolve) => {
    let sig;
    let done = false;
    const finish = (r) => {
      if (done) return;
      done = true;
      timers.clearTimeout(timer);
      if (!r.sig) sig?.close();
      resolve(r);
    };
    const timer = timers.setTimeout(() => finish({ error: new Error('rejoin attempt timed out') }), ATTEMPT_TIMEOUT);
    try {
      sig = open();
    } catch (err) {
      finish({ error: err });
      return;
    }
    sig.onclose = (code) => finish({ error: new Error(`signaling closed (${code})`) });
    sig.onmessage = (env) => {
      const d = env.data || {};
      if (env.type === 'session.ready') finish({ sig });
      else if (env.type === 'session.end') finish({ ended: d });
      else if (env.type === 'error') {
        const err = Object.assign(new Error(`${d.code}: ${d.message || ''}`), { code: d.code || 'internal', detail: d.message || '' });
        finish({ error: err, final: finalRefusal(err.code) });
      }
    };
    sig.opened.then(
      () => sig.send('hello', { role: 'client', software: 'porthole-web/dev' }),
      (err) => finish({ error: err }),
    );
  });
}
