// Origin: SHELL origin (the session window's toolbar).
//
// The slim bar above the device's page: device, time left, path (direct or
// relayed, with round-trip time), notices, and "End session". Formatting and
// stats parsing are pure and exported for node --test; the DOM part builds
// elements and sets only textContent, because device names come from agents.

import { explainPath } from './pathreason.js';
import { t } from './messages.js';

export { explainPath };

/** Warning levels for the time left: 5 minutes, then 1 minute. */
export function timerLevel(ms) {
  if (ms <= 60_000) return 'critical';
  if (ms <= 5 * 60_000) return 'warning';
  return 'ok';
}

/** "29:59", "1:05:00", "0:00". */
export function formatRemaining(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/**
 * Reads the selected candidate pair from an RTCStatsReport (or any iterable
 * of [id, stats] / Map) and says whether the path is relayed. Returns
 * {relay, local, remote, rttMs} or null before a pair is selected.
 */
export function pathFromStats(report) {
  const byId = new Map();
  for (const entry of report.values ? report.values() : report) {
    const s = Array.isArray(entry) ? entry[1] : entry;
    byId.set(s.id, s);
  }
  let pair = null;
  for (const s of byId.values()) {
    if (s.type === 'transport' && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId) || pair;
  }
  if (!pair) {
    // Browsers without transport stats: the nominated, succeeded pair.
    for (const s of byId.values()) {
      if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s;
    }
  }
  if (!pair) return null;
  const local = byId.get(pair.localCandidateId);
  const remote = byId.get(pair.remoteCandidateId);
  const relay = local?.candidateType === 'relay' || remote?.candidateType === 'relay';
  const rtt = pair.currentRoundTripTime;
  return {
    relay,
    local: local?.candidateType || '',
    remote: remote?.candidateType || '',
    rttMs: typeof rtt === 'number' ? Math.round(rtt * 1000) : null,
  };
}

/** The label shown for a path. */
export function pathLabel(p) {
  if (!p) return t('path.connecting');
  const kind = p.relay ? t('path.relayed') : t('path.direct');
  return p.rttMs === null ? kind : t('path.rtt', { kind, ms: p.rttMs });
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/**
 * Builds the toolbar into root. onEnd runs when the technician ends the
 * session; onExpire when the countdown reaches zero; onPopOut when they ask
 * for the device page in its own tab.
 */
export function createToolbar(root, { onEnd, onExpire, onPopOut }) {
  const bar = el('header', 'toolbar');
  bar.setAttribute('role', 'banner');
  const brand = el('span', 'brand', t('brand'));
  const device = el('span', 'device', '');
  device.title = t('toolbar.device');
  const site = el('span', 'site', '');
  site.title = t('toolbar.site');
  site.hidden = true;
  const timer = el('span', 'timer', '');
  timer.title = t('toolbar.timer');
  const path = el('span', 'path', t('path.connecting'));
  path.title = t('toolbar.path');
  const reason = el('span', 'path-reason', '');
  reason.title = t('toolbar.reason');
  reason.hidden = true;
  const where = el('span', 'where', '');
  where.title = t('toolbar.where');
  const notice = el('span', 'notice', '');
  notice.setAttribute('role', 'status');
  // At phone widths the button keeps a short label (shell.css), part of
  // its accessible name as WCAG 2.5.3 wants.
  const popout = el('button', 'popout');
  popout.append(el('span', 'long', t('toolbar.popout')), el('span', 'short', t('toolbar.popoutShort')));
  popout.setAttribute('aria-label', t('toolbar.popout'));
  popout.type = 'button';
  popout.title = t('toolbar.popoutTitle');
  popout.addEventListener('click', () => onPopOut?.());
  const end = el('button', 'end', t('toolbar.end'));
  end.type = 'button';
  end.addEventListener('click', () => onEnd());
  bar.append(brand, device, site, where, notice, popout, path, reason, timer, end);
  root.prepend(bar);

  let tick = null;
  let expiresAt = 0;
  let lastLevel = 'ok';
  const update = () => {
    const left = expiresAt - Date.now();
    timer.textContent = formatRemaining(left);
    const level = timerLevel(left);
    timer.dataset.level = level;
    if (level !== lastLevel) {
      lastLevel = level;
      if (level === 'warning') api.notify(t('toolbar.ends5'), 'warning');
      if (level === 'critical') api.notify(t('toolbar.ends1'), 'critical');
    }
    if (left <= 0) {
      clearInterval(tick);
      tick = null;
      onExpire?.();
    }
  };

  const api = {
    /** name and site are what the technician reads; id stays in the tooltip. */
    setDevice(name, siteName = '', id = '') {
      device.textContent = name || id;
      device.title = id && id !== name ? t('toolbar.deviceID', { id }) : t('toolbar.device');
      site.textContent = siteName;
      site.hidden = !siteName;
    },
    setExpires(date) {
      expiresAt = date.getTime();
      if (!tick) tick = setInterval(update, 1000);
      update();
    },
    /** p from pathFromStats; why, if given, from explainPath (pathreason.js). */
    setPath(p, why) {
      path.textContent = pathLabel(p);
      path.dataset.kind = p ? (p.relay ? 'relay' : 'direct') : '';
      if (p) path.title = t('path.title', { local: why?.local || p.local, remote: why?.remote || p.remote });
      if (why) path.title += t('path.candidates', { here: why.localTypes.join(', '), site: why.remoteTypes.join(', ') });
      reason.textContent = p?.relay && why?.reason ? why.reason : '';
      reason.hidden = !reason.textContent;
    },
    setLocation(text) {
      where.textContent = text;
      where.title = text;
    },
    notify(text, level = 'info') {
      notice.textContent = text;
      notice.dataset.level = level;
    },
    /** Draws the eye to "Open in its own tab" (a page that needs it). */
    attention(on) {
      if (on) popout.dataset.attention = '1';
      else delete popout.dataset.attention;
    },
    /** The session is over: no timer, no path, no button. */
    stop() {
      if (tick) clearInterval(tick);
      tick = null;
      end.disabled = true;
      popout.disabled = true;
      timer.textContent = '';
      delete timer.dataset.level;
      path.textContent = t('toolbar.closed');
      delete path.dataset.kind;
      reason.textContent = '';
      reason.hidden = true;
      where.textContent = '';
    },
  };
  return api;
}
