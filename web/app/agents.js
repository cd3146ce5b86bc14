// Agents and their devices, as pure functions: how a device's state reads
// (its agent's connection and the agent's last check of reachability and
// identity, in words, with the raw finding kept for a "details" toggle),
// and the enrollment command an admin copies to the site.

import { t } from './messages.js';

/**
 * healthView(device) → {kind, text, detail, checked}: the device's status
 * in words. kind is "ok", "bad", "off" (its agent is not connected: no
 * check counts then) or "unknown" (not checked yet). detail is the
 * agent's own finding, for the details toggle only; checked is when.
 */
export function healthView(d) {
  const h = d?.health;
  const checked = h?.checked || '';
  const detail = h?.problem || '';
  if (d && d.online === false) return { kind: 'off', text: t('health.offline'), detail, checked };
  if (!h) return { kind: 'unknown', text: t('health.unchecked'), detail: '', checked: '' };
  // Reachable with a problem: it answered, but as another device.
  if (h.reachable && h.problem) return { kind: 'bad', text: t('health.wrongDevice'), detail, checked };
  // Reachable only with old TLS (agent/tlscompat): say so, it is weak.
  if (h.reachable && h.tls) return { kind: 'ok', text: t('health.reachableLegacyTLS', { version: h.tls.version }), detail: h.tls.note || h.tls.cipher || '', checked };
  if (h.reachable) return { kind: 'ok', text: t('health.reachable'), detail, checked };
  // Nothing answered the agent's probes, which never touch the device's
  // services: not known to be down.
  if (h.unconfirmed) return { kind: 'unknown', text: t('health.unconfirmed'), detail, checked };
  // Only the web port is ever contacted by the check; a device without one
  // was probed without touching its services.
  const port = hasWebPage(d) ? d?.httpPort || (Array.isArray(d?.ports) && d.ports.length ? d.ports[0] : 0) : 0;
  return { kind: 'bad', text: port ? t('health.unreachablePort', { port }) : t('health.unreachable'), detail, checked };
}

/**
 * signalingRoute(device) → how the device's agent reaches signaling, in
 * words for the details ("directly", "via proxy 192.168.1.2:3128"), or ''
 * when its agent does not say.
 */
export function signalingRoute(d) {
  const r = d?.health?.signaling;
  if (typeof r !== 'string' || r === '') return '';
  return r === 'direct' ? 'directly' : r;
}

/**
 * openBlocker(device) → '' when the caller may open it now, else the key
 * of the sentence that says why not (shown beside the disabled button).
 */
export function openBlocker(d) {
  if (d.canOpen) return hasWebPage(d) ? '' : 'devices.why.noWeb';
  if (!d.online) return 'devices.why.offline';
  if (!d.enabled) return 'devices.why.disabled';
  return 'devices.why.role';
}

/**
 * servicesView(device) → [{kind, label}]: what the device offers, in the
 * agent's order ("Web :80", "SSH :22", "TCP :502 Modbus"). Devices of older
 * agents carry only httpPort and ports.
 */
export function servicesView(d) {
  let list = d?.services;
  if (!Array.isArray(list)) {
    list = (d?.ports || []).map((port) => ({ kind: port === d.httpPort ? 'web' : 'tcp', port }));
  }
  return list.map((s) => ({
    kind: s.kind,
    label: t('service.label', { kind: t(`service.${s.kind}`), port: s.port, name: s.name ? ` ${s.name}` : '' }),
  }));
}

/** hasWebPage(device) → whether Open has a web page to show. */
export function hasWebPage(d) {
  // Older agents send no services, and every device of theirs had one.
  if (Array.isArray(d?.services)) return d.services.some((s) => s.kind === 'web');
  return true;
}

/** A shell word: bare when safe, else single-quoted. */
function shellWord(s) {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

/** enrollCommand('https://app.example.com', 'phe_x') → the line to run on the device. */
export function enrollCommand(server, token) {
  return `porthole-agent enroll --server ${shellWord(server)} --token ${shellWord(token)}`;
}

/** enrollmentRequest(form values) → the body of POST /v1/enrollments. */
export function enrollmentRequest({ site, agent, name, hours }) {
  const body = { site };
  if (agent) body.agent = agent;
  if (name) body.name = name;
  const h = Number(hours);
  if (Number.isFinite(h) && h > 0) body.expiresIn = Math.round(h * 3600);
  return body;
}
