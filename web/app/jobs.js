// The Jobs view: every session as a job — who opened which device at which
// site, when, for how long, on which path, how it ended — with filters;
// and at #jobs/<id> one job's complete access log, its verification,
// export as JSON or HAR, and (for admins) terminating a live session.
// Names, never IDs, where people read who and what (IDs stay beside device
// names, for the CLI). Every value is set as text.

import { showCast } from './castplay.js';
import { knownDevices, openSession } from './devices.js';
import { errorText, has, t } from './messages.js';
import { $, anchor, api, busy, clock, el, note, when } from './ui.js';

let me = null;
let selected = '';
let shown = ''; // the job whose detail is on the page

/** formatBytes(1536) → "1.5 KiB". */
export function formatBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  let v = Number(n) || 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** formatDuration(95_000) → "1m 35s". */
export function formatDuration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${sec}s`;
  return `${sec}s`;
}

/**
 * The path an access-log entry took, in words: signaling for a request the
 * browser sent past the service worker (the server carried it to the
 * agent), peer to peer for the data channel. Entries older than the
 * fallback carry no path; they all took a data channel.
 */
export function viaLabel(e) {
  return e.via === 'signaling' ? t('jobs.log.via.signaling') : t('jobs.log.via.webrtc');
}

/** Paths that name a firmware or software update. */
const FIRMWARE = /firm|fwup|upgrade|flash/i;

/**
 * What an access-log entry changed: 'upload' (a file sent), 'firmware' (a
 * file sent to an update page), 'settings' (any other state-changing
 * request), 'request' (a refused request that changes nothing), or '' for
 * a plain read.
 */
export function changeKind(e) {
  const file = (e.form?.fields || []).some((f) => f.file);
  if (file) return FIRMWARE.test(e.url || '') ? 'firmware' : 'upload';
  if (e.change) return FIRMWARE.test(e.url || '') && e.method !== 'GET' ? 'firmware' : 'settings';
  return e.refused ? 'request' : '';
}

/**
 * changeSummary(entries) → "3 settings changes, 1 firmware upload attempt
 * refused": what a job changed, then what the site's policy refused, ''
 * when it changed nothing.
 */
export function changeSummary(entries) {
  const counts = new Map();
  for (const e of entries) {
    const kind = changeKind(e);
    if (!kind) continue;
    const key = `${kind}.${e.refused ? 'refused' : 'done'}`;
    counts.set(key, (counts.get(key) || 0) + 1);
  }
  const order = ['settings.done', 'upload.done', 'firmware.done', 'settings.refused', 'upload.refused', 'firmware.refused', 'request.refused'];
  return order
    .filter((k) => counts.has(k))
    .map((k) => t(`jobs.changes.${k}`, { count: counts.get(k) }))
    .join(', ');
}

/** jobChanges(job) → "3 changes, 1 refused", from the job's counts. */
export function jobChanges(j) {
  return [j.changes ? t('jobs.row.changes', { count: j.changes }) : '', j.refused ? t('jobs.row.refused', { count: j.refused }) : ''].filter(Boolean).join(', ');
}

/** fieldsText(form) → "hostname=p1, admin_password=(redacted), image=fw.bin (4.0 KiB)". */
export function fieldsText(form) {
  if (!form?.fields?.length) return '';
  const parts = form.fields.map((f) => {
    if (f.file) return `${f.name}=${t('jobs.changes.file', { file: f.file, size: formatBytes(f.size || 0) })}`;
    return `${f.name}=${f.redacted ? t('jobs.changes.redacted') : f.value || ''}`;
  });
  if (form.truncated) parts.push(t('jobs.changes.truncated'));
  return parts.join(', ');
}

/** The query string of the filter form's values. */
export function filterQuery(f) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

const TYPES = { 'Open Device Webpage': 'jobs.type.webpage', 'Open Device Port': 'jobs.type.port', 'Open Device Screen': 'jobs.type.screen' };
TYPES['Open Device Terminal'] = 'jobs.type.terminal';

/**
 * The relays a job's session went through (job.relays), one line each:
 * the relay's host:port and when the session used it, with fmt for times
 * ("until now" while it still does). A relay lost mid-session moved the
 * session to the next.
 */
export function relayLines(relays, fmt) {
  return (Array.isArray(relays) ? relays : []).map((r) => {
    const m = /^turns?:([^?]+)/.exec(String(r.relay || ''));
    const name = m ? m[1] : String(r.relay || '');
    return t(r.until ? 'jobs.relay.used' : 'jobs.relay.current', { relay: name, from: fmt(r.from), until: r.until ? fmt(r.until) : '' });
  });
}

/** jobWords(job, devices) → the names and words a job row shows. */
export function jobWords(j, devices = new Map()) {
  const known = devices.get(j.device);
  const reasonKey = `jobs.reason.${j.endReason}`;
  return {
    type: TYPES[j.type] ? t(TYPES[j.type]) : j.type,
    user: j.userName || j.user,
    device: j.deviceName || known?.name || j.device,
    site: j.siteName || known?.siteName || j.site || '',
    path: j.path === 'relay' ? t('jobs.path.relay') : j.path === 'direct' ? t('jobs.path.direct') : '',
    reason: j.live ? t('jobs.live') : j.endReason && has(reasonKey) ? t(reasonKey) : has(`jobs.state.${j.state}`) ? t(`jobs.state.${j.state}`) : j.endReason || j.state,
    endedBy: j.endedByName || '',
  };
}

function localToRFC3339(v) {
  if (!v) return '';
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function filters() {
  return {
    user: $('jf-user').value.trim(),
    device: $('jf-device').value.trim(),
    site: $('jf-site').value.trim(),
    from: localToRFC3339($('jf-from').value),
    to: localToRFC3339($('jf-to').value),
    minDuration: $('jf-min').value.trim(),
    path: $('jf-path').value,
    reason: $('jf-reason').value,
  };
}

/** showJobs(user, id): the list, and job id's detail when given. */
export async function showJobs(user, id) {
  me = user;
  selected = id || '';
  if (!selected) {
    $('job-detail').hidden = true;
    shown = '';
  }
  await refreshJobs();
  if (selected) openJob(selected);
}

async function refreshJobs() {
  let list;
  try {
    list = await api('GET', `/v1/jobs${filterQuery(filters())}`);
  } catch (err) {
    if (err.status !== 401) note('jobs', 'error', errorText('jobs.load', err));
    return;
  }
  note('jobs', '', '');
  const jobs = Array.isArray(list?.jobs) ? list.jobs : [];
  $('jobs-empty').hidden = jobs.length > 0;
  $('job-table').hidden = jobs.length === 0;
  $('job-rows').replaceChildren(
    ...jobs.map((j) => {
      const w = jobWords(j, knownDevices);
      return el(
        'tr',
        { dataset: { job: j.id }, onclick: (e) => e.target.closest('a') || (location.hash = `#jobs/${j.id}`), attrs: { 'aria-current': String(j.id === selected) } },
        el('td', {}, el('a', { href: `#jobs/${j.id}`, textContent: w.type })),
        el('td', { textContent: w.user }),
        el('td', {}, el('span', { className: 'cell-name', textContent: w.device }), w.device !== j.device ? el('span', { className: 'cell-id', textContent: j.device }) : null),
        el('td', { textContent: w.site }),
        el('td', { textContent: when(j.start) }),
        el('td', { textContent: formatDuration(j.durationMs) }),
        el('td', { textContent: w.path }),
        el(
          'td',
          { className: 'requests num' },
          String(j.requests + j.tcpStreams),
          j.changes || j.refused ? el('span', { className: 'job-changes', textContent: ` · ${jobChanges(j)}` }) : null,
        ),
        el('td', { className: 'num', textContent: formatBytes(j.bytes) }),
        el('td', { className: 'reason', dataset: { reason: j.live ? 'live' : j.endReason || j.state }, textContent: w.reason }),
      );
    }),
  );
}

async function openJob(id) {
  selected = id;
  for (const tr of $('job-rows').children) tr.setAttribute('aria-current', String(/** @type {HTMLElement} */ (tr).dataset.job === id));
  const path = `/v1/jobs/${encodeURIComponent(id)}`;
  let job;
  let log;
  try {
    [job, log] = await Promise.all([api('GET', path), api('GET', `${path}/log`)]);
  } catch (err) {
    if (err.status !== 401) note('jobs', 'error', errorText('job.load', err));
    return;
  }
  if (selected !== id) return; // the user moved on meanwhile
  const w = jobWords(job, knownDevices);
  const detail = $('job-detail');
  detail.hidden = false;
  detail.dataset.job = id;
  $('job-title').textContent = t('jobs.detail.title', { type: w.type, device: w.device });
  const ended = job.live
    ? t('jobs.detail.stillLive')
    : t(w.endedBy ? 'jobs.detail.endedBy' : 'jobs.detail.ended', { time: when(job.end), reason: w.reason, name: w.endedBy });
  $('job-summary').textContent = [
    t('jobs.detail.by', { user: w.user }),
    w.site,
    t('jobs.detail.started', { time: when(job.start) }),
    ended,
    t('jobs.detail.entries', { count: job.logEntries, bytes: formatBytes(job.bytes) }),
    job.approvedBy ? t('jobs.detail.approved', { by: job.approvedByName || job.approvedBy, time: when(job.approvedAt), reason: job.approvalReason || '' }) : '',
  ]
    .filter(Boolean)
    .join(' · ');
  $('job-states').replaceChildren(
    ...(job.states || []).map((s) =>
      el('li', {}, el('span', { textContent: has(`jobs.state.${s.state}`) ? t(`jobs.state.${s.state}`) : s.state }), ' ', el('time', { className: 'muted', textContent: clock(s.time) })),
    ),
  );
  const relays = relayLines(job.relays, clock);
  $('job-relays-heading').hidden = $('job-relays').hidden = relays.length === 0;
  $('job-relays').replaceChildren(...relays.map((line) => el('li', { textContent: line })));
  anchor('job-export-json').href = `${path}/export?format=json`;
  anchor('job-export-har').href = `${path}/export?format=har`;
  if (shown !== id) {
    note('job-again', '', '');
    note('job-verify', '', '');
    note('job-detail', '', '');
  }
  shown = id;
  if (log.more) note('job-detail', 'ok', t('jobs.detail.more'));
  const siteAdmin = !!job.site && (me?.roles?.[job.site] || []).includes('siteadmin');
  $('job-terminate').hidden = !((me?.admin || siteAdmin) && job.live);
  // A web page session that is over offers a new one on the same device:
  // where the session window's end page leads.
  const again = job.type === 'Open Device Webpage' && !job.live;
  $('job-again-box').hidden = !again;
  $('job-again').textContent = again ? t('jobs.detail.again', { device: w.device }) : '';
  $('job-again').dataset.device = again ? job.device : '';
  $('job-again').dataset.agent = again ? job.agent || '' : '';
  $('job-again').dataset.name = again ? w.device : '';
  const entries = Array.isArray(log.entries) ? log.entries : [];
  // Changes first: what the session changed or tried to, then the log.
  const changed = entries.filter((e) => changeKind(e));
  $('job-changes').hidden = changed.length === 0;
  $('job-changes-summary').textContent = changeSummary(entries);
  $('job-change-rows').replaceChildren(
    ...changed.map((e) =>
      el(
        'li',
        { className: e.refused ? 'refused' : 'changed', dataset: { seq: String(e.seq), kind: changeKind(e) } },
        el('time', { className: 'muted', textContent: clock(e.time) }),
        ' ',
        el('strong', { textContent: e.kind === 'tcp' ? t('jobs.log.port', { port: e.port }) : `${e.method || ''} ${e.url || ''}` }),
        e.refused ? el('span', { className: 'change-refused', textContent: ` ${t('jobs.changes.refusedBecause', { reason: e.refused })}` }) : null,
        fieldsText(e.form) ? el('div', { className: 'change-fields', textContent: fieldsText(e.form) }) : null,
      ),
    ),
  );
  $('log-rows').replaceChildren(
    ...(entries.length
      ? entries.map((e) =>
          el(
            'tr',
            { dataset: { seq: String(e.seq) }, className: e.refused ? 'refused' : e.change ? 'changed' : '' },
            el('td', { className: 'num', textContent: String(e.seq) }),
            el('td', { textContent: clock(e.time) }),
            el('td', { textContent: has(`jobs.log.kind.${e.kind}`) ? t(`jobs.log.kind.${e.kind}`) : e.kind }),
            el('td', { textContent: e.method || '' }),
            el('td', { className: 'url', textContent: e.kind === 'tcp' ? t('jobs.log.port', { port: e.port }) : e.url }),
            el('td', { textContent: e.refused ? t('jobs.log.refused') : e.status ? String(e.status) : e.error ? t('jobs.log.failed') : '', title: e.refused || '' }),
            el('td', { className: 'num', textContent: formatBytes(e.reqBytes) }),
            el('td', { className: 'num', textContent: formatBytes(e.respBytes) }),
            el('td', { className: 'num', textContent: `${(e.durationUs / 1000).toFixed(1)} ms` }),
            el('td', { className: 'num', textContent: String(e.stream) }),
            el('td', {
              className: e.via === 'signaling' ? 'via-signaling' : '',
              textContent: viaLabel(e),
              title: e.via === 'signaling' ? t('jobs.log.via.signalingHint') : '',
            }),
          ),
        )
      : [el('tr', {}, el('td', { colSpan: 11, className: 'empty', textContent: t('jobs.detail.logEmpty') }))]),
  );
  showRecording(id, job, path);
  detail.scrollIntoView({ block: 'start' });
  $('job-title').focus({ preventScroll: true });
}

let stopReplay = () => {};

/**
 * showRecording offers the replay of a terminal job's recording (the
 * agent's asciicast of every browser terminal of the session).
 */
async function showRecording(id, job, path) {
  stopReplay();
  stopReplay = () => {};
  const box = $('job-replay-box');
  const player = $('job-replay');
  player.replaceChildren();
  delete player.dataset.replay;
  box.hidden = job.type !== 'Open Device Terminal';
  if (box.hidden) return;
  note('job-replay', '', '');
  let res;
  try {
    res = await fetch(`${path}/recording`, { credentials: 'same-origin', cache: 'no-store' });
  } catch (err) {
    note('job-replay', 'error', `${t('jobs.replay.load')}: ${String(err?.message || err)}`);
    return;
  }
  if (selected !== id) return;
  if (res.status === 404) {
    note('job-replay', '', t('jobs.replay.none'));
    return;
  }
  if (!res.ok) {
    note('job-replay', 'error', `${t('jobs.replay.load')}: ${res.status}`);
    return;
  }
  const text = await res.text();
  if (selected !== id) return;
  try {
    stopReplay = await showCast(player, text, t);
  } catch (err) {
    note('job-replay', 'error', `${t('jobs.replay.load')}: ${String(err?.message || err)}`);
  }
}

async function verify(e) {
  await busy(e.currentTarget, async () => {
    try {
      const r = await api('GET', `/v1/jobs/${encodeURIComponent(selected)}/verify`);
      note('job-verify', r.ok ? 'ok' : 'error', r.ok ? t('jobs.verify.ok', { entries: r.entries, attested: r.attested }) : t('jobs.verify.bad', { broken: r.broken }));
    } catch (err) {
      note('job-verify', 'error', errorText('job.verify', err));
    }
  });
}

async function terminate(e) {
  if (!window.confirm(t('jobs.detail.terminateConfirm'))) return;
  const id = selected;
  await busy(e.currentTarget, async () => {
    try {
      await api('POST', `/v1/jobs/${encodeURIComponent(id)}/terminate`);
      note('job-detail', 'ok', t('jobs.detail.terminated'));
    } catch (err) {
      note('job-detail', 'error', errorText('job.terminate', err));
    }
  });
  await refreshJobs();
  openJob(id);
}

/** setupJobs wires the view's controls once. */
export function setupJobs() {
  $('job-filter').addEventListener('submit', async (e) => {
    e.preventDefault();
    await busy(e.submitter || $('job-filter-submit'), refreshJobs);
  });
  $('job-filter').addEventListener('reset', () => setTimeout(refreshJobs));
  $('job-verify').addEventListener('click', verify);
  $('job-terminate').addEventListener('click', terminate);
  $('job-again').addEventListener('click', (e) => {
    const b = /** @type {HTMLButtonElement} */ (e.currentTarget);
    openSession({ id: b.dataset.device || '', name: b.dataset.name || '', agent: b.dataset.agent || '' }, b, 'job-again');
  });
}
