// Origin: SHELL origin (the session window, which owns the peer connection).
//
// Moving the session to another relay when its relay dies, as the Go
// technician does it (agent/technician: refreshRelays). Before an ICE
// restart of a relayed path, the shell asks signaling for the session's
// relays without the one it lost (ice.refresh, proto/relays.go), applies
// the answer (ice.servers) with pc.setConfiguration, and restarts ICE
// through them. Pure helpers here; the wiring is in shell.js.

import { t } from './messages.js';

/** Bounds of ice.servers and ice.refresh (proto.MaxICEServers, proto.MaxFailedRelays). */
export const MAX_ICE_SERVERS = 8;
export const MAX_FAILED_RELAYS = 4;
// How long a restart waits for ice.servers before it goes ahead with the
// servers it has (RefreshWait); how many restarts of one break ask.
export const REFRESH_WAIT = 2_000;
export const MAX_REFRESHES = 3;
// An ice.servers this recent (the agent asked first) is used as it is
// (twice proto.ICERefreshInterval).
export const REFRESH_FRESH = 2_000;

const TURN_RE = /^turns?:(\[[^\]]*\]|[^:?]+)(?::(\d+))?/;

/** host:port of a turn: or turns: URL, or '' for any other. */
export function turnHost(url) {
  const m = typeof url === 'string' ? TURN_RE.exec(url) : null;
  if (!m) return '';
  return `${m[1]}:${m[2] || (url.startsWith('turns:') ? '5349' : '3478')}`;
}

/** The distinct host:port of each TURN URL of servers. */
export function relayHosts(servers) {
  const out = [];
  for (const s of servers || []) {
    for (const u of [].concat(s?.urls || [])) {
      const h = turnHost(u);
      if (h && !out.includes(h)) out.push(h);
    }
  }
  return out;
}

/**
 * The relay the selected pair of a getStats report goes through, as TURN
 * URLs of servers: this side's relay candidate names its server (url); a
 * remote relay candidate (the agent's) only its address, matched against
 * the servers' hosts. Null when the path is not relayed.
 */
export function relayOf(report, servers) {
  const byId = new Map();
  for (const entry of report.values ? report.values() : report) {
    const s = Array.isArray(entry) ? entry[1] : entry;
    byId.set(s.id, s);
  }
  let pair = null;
  for (const s of byId.values()) {
    if (s.type === 'transport' && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId) || pair;
  }
  if (!pair) return null;
  const local = byId.get(pair.localCandidateId);
  const remote = byId.get(pair.remoteCandidateId);
  if (local?.candidateType === 'relay' && turnHost(local.url)) return [local.url];
  const relay = local?.candidateType === 'relay' ? local : remote?.candidateType === 'relay' ? remote : null;
  if (!relay) return null;
  const addr = relay.address || relay.ip || '';
  const urls = [];
  for (const s of servers || []) {
    for (const u of [].concat(s?.urls || [])) {
      if (turnHost(u).startsWith(`${addr}:`)) urls.push(u);
    }
  }
  return urls.length ? urls : [`turn:${addr}`];
}

/** ice.servers' data, checked: null when malformed. */
export function iceServersOf(d) {
  if (!d || !Array.isArray(d.iceServers) || d.iceServers.length > MAX_ICE_SERVERS) return null;
  for (const s of d.iceServers) {
    const urls = [].concat(s?.urls || []);
    if (urls.length === 0 || urls.length > MAX_ICE_SERVERS || !urls.every((u) => typeof u === 'string' && /^(stun|turns?):/.test(u))) return null;
  }
  return { iceServers: d.iceServers, relays: relayHosts(d.iceServers) };
}

/** The toolbar text while a restart moves to another relay. */
export function relayLostText(lost, relays, attempt) {
  const lostHosts = relayHosts([{ urls: lost }]);
  // Signaling hands out the lost relay again when no other is configured.
  const others = relays.filter((r) => !lostHosts.includes(r));
  const args = { lost: lostHosts.join(', ') || lost.join(', '), relay: others.join(', '), attempt };
  if (!others.length) return t('relay.lostNoNew', args);
  return t(attempt > 1 ? 'relay.lostAttempt' : 'relay.lost', args);
}
