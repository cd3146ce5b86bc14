// Origin: SHELL origin (the session window); pure.
//
// Why a session is relayed, in plain language, from what ICE gathered and
// tried as RTCPeerConnection.getStats() reports it. Pure: it reads a stats
// report (RTCStatsReport, a Map, or any iterable of stats or [id, stats])
// and never touches the DOM, so node --test covers it.
//
// What each side's candidates say:
//   - no srflx candidate but a relay one: UDP to the STUN server got no
//     answer, so UDP is blocked there (the relay was reached over TCP/TLS);
//   - only relay candidates locally: direct paths are turned off (relay
//     policy);
//   - a peer-reflexive candidate with the same public address as that
//     side's srflx but another port: its NAT gives each destination its own
//     port (a symmetric NAT), so the port learned from STUN is useless to
//     the other side;
//   - srflx on both sides and no direct pair succeeded: neither NAT lets
//     the other side's packets in.
//
// What the stats cannot show is how the agent reached the relay (remote
// candidates carry no relay protocol): the agent says it in session.path
// (proto.SessionPath: relay udp/tcp/tls, the site's proxy, and a site
// reason such as "proxy-only"), and explainPath takes that report as its
// second argument.

import { t } from './messages.js';

/** The relay reasons, so callers and tests can compare. */
export const REASONS = Object.freeze({
  policy: t('reason.policy'),
  udpBlockedBoth: t('reason.udpBlockedBoth'),
  udpBlockedSite: t('reason.udpBlockedSite'),
  udpBlockedHere: t('reason.udpBlockedHere'),
  symmetricBoth: t('reason.symmetricBoth'),
  symmetricSite: t('reason.symmetricSite'),
  symmetricHere: t('reason.symmetricHere'),
  strictNATs: t('reason.strictNATs'),
  noDirect: t('reason.noDirect'),
  proxyOnly: t('reason.proxyOnly'),
  tlsOnly: t('reason.tlsOnly'),
});

/** The words for the agent's site reasons (proto.Site… values). */
const SITE_REASONS = Object.freeze({
  'proxy-only': REASONS.proxyOnly,
  'tls-only': REASONS.tlsOnly,
  'udp-blocked': REASONS.udpBlockedSite,
});

function statsList(report) {
  const out = [];
  if (!report) return out;
  for (const entry of report.values ? report.values() : report) {
    out.push(Array.isArray(entry) ? entry[1] : entry);
  }
  return out;
}

const hostOf = (c) => c.address || c.ip || '';

/** Whether cands has a prflx candidate on a srflx's address but another port. */
function symmetricEvidence(cands) {
  const srflx = cands.filter((c) => c.candidateType === 'srflx');
  return cands.some(
    (c) => c.candidateType === 'prflx' && srflx.some((s) => hostOf(s) === hostOf(c) && hostOf(c) !== '' && s.port !== c.port),
  );
}

/**
 * Explains the selected path of a stats report. Returns null before ICE
 * selected a pair, otherwise {relay, local, remote, localTypes,
 * remoteTypes, reason}: local and remote are the selected pair's candidate
 * types (with the relay's transport, e.g. "relay/tcp"), the *Types lists
 * are what each side offered or revealed, sorted, and reason is '' for a
 * direct path and a short sentence for a relayed one. site, if given, is
 * the agent's session.path report: it names the agent's relay transport
 * and, when the agent knows it, why the site needs the relay.
 */
export function explainPath(report, site = null) {
  const all = statsList(report);
  const byId = new Map(all.map((s) => [s.id, s]));
  let pair = null;
  for (const s of all) {
    if (s.type === 'transport' && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId) || pair;
  }
  if (!pair) {
    for (const s of all) {
      if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s;
    }
  }
  if (!pair) return null;
  const local = byId.get(pair.localCandidateId) || {};
  const remote = byId.get(pair.remoteCandidateId) || {};
  const locals = all.filter((s) => s.type === 'local-candidate');
  const remotes = all.filter((s) => s.type === 'remote-candidate');
  const types = (cands) => [...new Set(cands.map((c) => c.candidateType).filter(Boolean))].sort();
  const relay = local.candidateType === 'relay' || remote.candidateType === 'relay';
  const describe = (c) => (c.candidateType === 'relay' && c.relayProtocol ? `relay/${c.relayProtocol}` : c.candidateType || '');
  // The agent's report applies while its end of the pair is a relay.
  const agentRelay = remote.candidateType === 'relay' && site?.path === 'relay' && site?.local === 'relay' ? site : null;
  let remoteDesc = describe(remote);
  if (agentRelay && /^(udp|tcp|tls)$/.test(agentRelay.relay || '')) {
    remoteDesc = `relay/${agentRelay.relay}`;
    if (agentRelay.proxy) remoteDesc = t('path.viaProxy', { relay: remoteDesc });
  }
  return {
    relay,
    local: describe(local),
    remote: remoteDesc,
    localTypes: types(locals),
    remoteTypes: types(remotes),
    reason: relay ? relayReason(locals, remotes, all, agentRelay) : '',
  };
}

function relayReason(locals, remotes, all, agentRelay) {
  const has = (cands, type) => cands.some((c) => c.candidateType === type);
  if (locals.length > 0 && locals.every((c) => c.candidateType === 'relay')) return REASONS.policy;
  // A side without srflx had no UDP answer from the STUN server. The
  // agent's relay candidate over TCP shows up as a relay with no srflx.
  const siteBlocked = !has(remotes, 'srflx') && has(remotes, 'relay');
  const hereBlocked = !has(locals, 'srflx') && has(locals, 'relay');
  // The agent knows more about its own network than the stats show.
  const siteReason = agentRelay && Object.hasOwn(SITE_REASONS, agentRelay.site) ? SITE_REASONS[agentRelay.site] : '';
  if (siteReason && siteReason !== REASONS.udpBlockedSite) {
    return hereBlocked ? t('reason.both', { first: siteReason, second: REASONS.udpBlockedHere }) : siteReason;
  }
  if (siteBlocked && hereBlocked) return REASONS.udpBlockedBoth;
  if (siteBlocked) return REASONS.udpBlockedSite;
  if (hereBlocked) return REASONS.udpBlockedHere;
  const directWorked = all.some((s) => {
    if (s.type !== 'candidate-pair' || s.state !== 'succeeded') return false;
    const l = all.find((c) => c.id === s.localCandidateId);
    const r = all.find((c) => c.id === s.remoteCandidateId);
    return l && r && l.candidateType !== 'relay' && r.candidateType !== 'relay';
  });
  if (directWorked) return REASONS.noDirect;
  const symSite = symmetricEvidence(remotes);
  const symHere = symmetricEvidence(locals);
  if (symSite && symHere) return REASONS.symmetricBoth;
  if (has(locals, 'srflx') && has(remotes, 'srflx')) {
    // Both sides reach STUN over UDP, yet every direct check failed. With
    // evidence for one side only, name it; with none, both NATs map per
    // destination or filter strictly, which in practice is symmetric NAT.
    if (symSite) return t('reason.symmetricSiteOnly', { reason: REASONS.symmetricSite });
    if (symHere) return t('reason.symmetricHereOnly', { reason: REASONS.symmetricHere });
    return t('reason.strictDetail', { reason: REASONS.strictNATs });
  }
  return REASONS.noDirect;
}
