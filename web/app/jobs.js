// The Jobs tab: every session as a job — who opened which device, when, for
// how long, on which path, how it ended — with filters, and one job's
// complete access log, its verification, export as JSON or HAR, and (for
// admins) terminating a live session. Every value is set as text.

let ctx = null;
let selected = '';

/** formatBytes(1536) → "1.5 KiB". */
export function formatBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  let v = n;
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

/** The query string of the filter form's values. */
export function filterQuery(f) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

function localToRFC3339(v) {
  if (!v) return '';
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function filters() {
  const { $ } = ctx;
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

export async function showJobs(c) {
  ctx = c;
  await refreshJobs();
  if (selected) openJob(selected);
}

async function refreshJobs() {
  const { api, el, $, showMessage, describe } = ctx;
  let list;
  try {
    list = await api('GET', `/v1/jobs${filterQuery(filters())}`);
  } catch (err) {
    showMessage(`Could not load jobs: ${describe(err)}`);
    return;
  }
  $('jobs-empty').hidden = list.jobs.length > 0;
  $('job-rows').replaceChildren(
    ...list.jobs.map((j) =>
      el(
        'tr',
        { dataset: { job: j.id }, onclick: () => openJob(j.id), ariaSelected: String(j.id === selected) },
        el('td', { textContent: j.type, title: j.id }),
        el('td', { textContent: j.userName || j.user }),
        el('td', { textContent: j.device }),
        el('td', { textContent: j.site || '' }),
        el('td', { textContent: new Date(j.start).toLocaleString() }),
        el('td', { textContent: j.live ? 'live' : j.end ? new Date(j.end).toLocaleString() : '' }),
        el('td', { textContent: formatDuration(j.durationMs) }),
        el('td', { textContent: j.path === 'relay' ? 'relayed' : j.path || '' }),
        el('td', { className: 'requests', textContent: String(j.requests + j.tcpStreams) }),
        el('td', { textContent: formatBytes(j.bytes) }),
        el('td', { className: 'reason', textContent: j.endReason || j.state }),
      ),
    ),
  );
}

async function openJob(id) {
  const { api, el, $, me, showMessage, describe } = ctx;
  selected = id;
  for (const tr of $('job-rows').children) tr.ariaSelected = String(tr.dataset.job === id);
  const path = `/v1/jobs/${encodeURIComponent(id)}`;
  let job;
  let log;
  try {
    [job, log] = await Promise.all([api('GET', path), api('GET', `${path}/log`)]);
  } catch (err) {
    showMessage(`Could not load the job: ${describe(err)}`);
    return;
  }
  $('job-detail').hidden = false;
  $('job-detail').dataset.job = id;
  $('job-title').textContent = `${job.type}: ${job.device}`;
  const who = job.userName || job.user;
  const ended = job.live ? 'still live' : `ended ${job.end ? new Date(job.end).toLocaleString() : ''} (${job.endReason || job.state}${job.endedBy ? ` by ${job.endedBy}` : ''})`;
  $('job-summary').textContent = `${who} · started ${new Date(job.start).toLocaleString()} · ${ended} · ${job.logEntries} log entries · ${formatBytes(job.bytes)}`;
  $('job-states').textContent = (job.states || [])
    .map((s) => `${s.state}${s.detail ? ` (${s.detail})` : ''} ${new Date(s.time).toLocaleTimeString()}`)
    .join(' → ');
  $('job-export-json').href = `${path}/export?format=json`;
  $('job-export-har').href = `${path}/export?format=har`;
  $('job-verified').textContent = '';
  $('job-verified').className = '';
  $('job-terminate').hidden = !(me.admin && job.live);
  $('log-rows').replaceChildren(
    ...log.entries.map((e) =>
      el(
        'tr',
        { dataset: { seq: String(e.seq) } },
        el('td', { textContent: String(e.seq) }),
        el('td', { textContent: new Date(e.time).toLocaleTimeString() }),
        el('td', { textContent: e.kind }),
        el('td', { textContent: e.method || '' }),
        el('td', { textContent: e.kind === 'tcp' ? `port ${e.port}` : e.url }),
        el('td', { textContent: e.status ? String(e.status) : e.error || '' }),
        el('td', { textContent: formatBytes(e.reqBytes) }),
        el('td', { textContent: formatBytes(e.respBytes) }),
        el('td', { textContent: `${(e.durationUs / 1000).toFixed(1)} ms` }),
        el('td', { textContent: String(e.stream) }),
      ),
    ),
  );
  if (log.more) showMessage('The log is longer than one page; export it to see every entry.', 'info');
}

async function verify() {
  const { api, $, describe } = ctx;
  const out = $('job-verified');
  try {
    const r = await api('GET', `/v1/jobs/${encodeURIComponent(selected)}/verify`);
    out.className = r.ok ? 'verified-ok' : 'verified-bad';
    out.textContent = r.ok
      ? `Untouched: ${r.entries} entries, ${r.attested} attested by the signed checkpoint.`
      : `Tampered: first broken entry ${r.broken}: ${r.problem}`;
  } catch (err) {
    out.className = 'verified-bad';
    out.textContent = `Could not verify: ${describe(err)}`;
  }
}

async function terminate() {
  const { api, showMessage, describe } = ctx;
  if (!window.confirm('End this live session now? The technician is disconnected.')) return;
  try {
    await api('POST', `/v1/jobs/${encodeURIComponent(selected)}/terminate`);
    showMessage('Session terminated.', 'info');
  } catch (err) {
    showMessage(`Could not terminate: ${describe(err)}`);
  }
  await refreshJobs();
  openJob(selected);
}

if (typeof document !== 'undefined' && document.getElementById('job-filter')) {
  document.getElementById('job-filter').addEventListener('submit', (e) => {
    e.preventDefault();
    refreshJobs();
  });
  document.getElementById('job-verify').addEventListener('click', verify);
  document.getElementById('job-terminate').addEventListener('click', terminate);
}
