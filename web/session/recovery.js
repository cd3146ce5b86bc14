// Origin: SHELL origin (the session window, which owns the peer connection).
//
// ICE restart timing for the shell, as the Go technician does it
// (agent/technician: recover): once the peer connection has connected, a
// broken path is repaired with ICE restarts over signaling rather than
// ending the session. The agent answers an offer carrying the same DTLS
// fingerprint on the existing connection, so the DTLS and SCTP associations
// and every data channel survive, and requests in flight complete once SCTP
// retransmits over the new path.
//
// Pure timing, no WebRTC: the caller feeds connection states in and gets
// restart(attempt), notice(text, level) and giveUp(message) calls out. The
// timers are injectable for node --test.

import { t } from './messages.js';

export const RECOVERY = Object.freeze({
  // How long 'disconnected' may last before the first restart: a path that
  // only hiccuped (a lost consent check or two) comes back on its own.
  grace: 1_000,
  // How long one restart may take before the next: its offer may have been
  // lost while the agent itself was reconnecting to signaling (resent then).
  retry: 4_000,
  // From the break to the end of the session when nothing worked.
  giveUp: 60_000,
});

export const RECONNECTING = t('recovery.reconnecting');

/** The toolbar text while restart number attempt runs. */
export function reconnectingText(attempt) {
  return attempt > 1 ? t('recovery.attempt', { attempt }) : RECONNECTING;
}

/** The toolbar text once the path is back. */
export function restoredText(ms, restarts) {
  const s = ms < 10_000 ? (ms / 1000).toFixed(1) : String(Math.round(ms / 1000));
  return t('recovery.restored', { seconds: s, count: restarts });
}

/** The session's end message when the restarts did not help. */
export function giveUpText(cfg, restarts) {
  return t('recovery.giveUp', { count: restarts, seconds: Math.round(cfg.giveUp / 1000) });
}

/**
 * Recovery follows one RTCPeerConnection's connectionState. Before the first
 * 'connected' it does nothing (the caller's connect timeout applies). After
 * it: 'failed' restarts at once, 'disconnected' after cfg.grace; a restart
 * is repeated every cfg.retry until 'connected', and cfg.giveUp after the
 * break giveUp() is called once. 'closed' or stop() ends everything.
 */
export class Recovery {
  constructor({ restart, notice = (_text, _level) => {}, giveUp, config = RECOVERY, clock = globalThis }) {
    this.restart = restart;
    this.notice = notice;
    this.onGiveUp = giveUp;
    this.cfg = config;
    this.clock = clock;
    this.established = false;
    this.stopped = false;
    this.brokeAt = 0; // clock.now() of the break; 0 while the path is fine
    this.attempts = 0; // restarts of the current break
    this.total = 0; // restarts of the session
    this.timer = null; // grace or retry
    this.deadline = null;
  }

  /** True while a break is being repaired. */
  get recovering() {
    return this.brokeAt !== 0;
  }

  /** Feeds one connectionState. */
  update(st) {
    if (this.stopped) return;
    switch (st) {
      case 'connected':
        if (!this.established) {
          this.established = true;
          return;
        }
        if (!this.recovering) return;
        {
          const took = this.now() - this.brokeAt;
          const n = this.attempts;
          this.reset();
          this.notice(n > 0 ? restoredText(took, n) : '', 'info');
        }
        return;
      case 'disconnected':
      case 'failed':
        if (!this.established) return;
        if (!this.recovering) this.startBreak();
        // 'failed' does not wait out the grace.
        if (st === 'failed' && this.attempts === 0) this.attempt();
        return;
      case 'closed':
        this.stop();
        return;
      default:
    }
  }

  startBreak() {
    this.brokeAt = this.now() || 1;
    this.attempts = 0;
    this.notice(RECONNECTING, 'warning');
    this.deadline = this.clock.setTimeout(() => this.expire(), this.cfg.giveUp);
    this.timer = this.clock.setTimeout(() => this.attempt(), this.cfg.grace);
  }

  attempt() {
    if (this.stopped || !this.recovering) return;
    this.clock.clearTimeout(this.timer);
    this.attempts++;
    this.total++;
    this.notice(reconnectingText(this.attempts), 'warning');
    try {
      const p = this.restart(this.attempts);
      p?.catch?.((err) => console.warn('porthole: ICE restart:', err?.message || err));
    } catch (err) {
      console.warn('porthole: ICE restart:', err?.message || err);
    }
    this.timer = this.clock.setTimeout(() => this.attempt(), this.cfg.retry);
  }

  expire() {
    if (this.stopped || !this.recovering) return;
    const n = this.attempts;
    this.stop();
    this.onGiveUp(giveUpText(this.cfg, n));
  }

  reset() {
    this.clock.clearTimeout(this.timer);
    this.clock.clearTimeout(this.deadline);
    this.timer = this.deadline = null;
    this.brokeAt = 0;
    this.attempts = 0;
  }

  stop() {
    this.reset();
    this.stopped = true;
  }

  now() {
    return this.clock.now ? this.clock.now() : Date.now();
  }
}
