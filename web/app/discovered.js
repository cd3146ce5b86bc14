// The Discovered panel of a site, for its configurers: what the site's
// agents found on its LAN (their latest scans), "Scan now", and Adopt with
// one click. Adopting records the identity the scan saw (MAC and serial),
// which the agent checks before every session; the new device appears in
// the site's list, disabled, until a configurer turns remote access on.

import { errorText, t } from './messages.js';
import { api, busy, el, note, noteSlot, when } from './ui.js';

const POLL_EVERY = 3_000;
const POLL_FOR = 120_000;

/** discoveredPanel renders the site's panel and loads it. */
export function discoveredPanel(site, onAdopted) {
  const key = `discovered:${site.id}`;
  const list = el('div', { className: 'discovered-list' });
  const scan = el('button', { type: 'button', className: 'secondary scan-now', textContent: t('discovered.scan'), dataset: { site: site.id } });
  const panel = el(
    'details',
    { className: 'discovered', dataset: { site: site.id, keep: 'discovered' } },
    el('summary', { textContent: t('discovered.heading') }),
    el('p', { className: 'muted', textContent: t('discovered.intro') }),
    el('div', { className: 'discovered-actions' }, scan),
    noteSlot(key),
    list,
  );
  const load = async () => {
    const res = await api('GET', `/v1/sites/${encodeURIComponent(site.id)}/discovered`);
    renderScans(list, site, res?.agents || [], onAdopted);
    return res?.agents || [];
  };
  scan.addEventListener('click', () =>
    busy(scan, async () => {
      note(key, '', '');
      try {
        const before = new Map((await load()).map((a) => [a.agent, a.scan || '']));
        const res = await api('POST', `/v1/sites/${encodeURIComponent(site.id)}/discover`);
        if (!res.asked?.length) {
          note(key, 'error', t('discovered.noAgent'));
          return;
        }
        note(key, 'ok', t('discovered.scanning', { count: res.asked.length }));
        // The scan's report arrives when the agent is done: wait for a new scan id.
        const deadline = Date.now() + POLL_FOR;
        while (Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, POLL_EVERY));
          const agents = await load();
          if (agents.some((a) => res.asked.includes(a.agent) && (a.scan || '') !== before.get(a.agent))) {
            note(key, 'ok', t('discovered.done'));
            return;
          }
        }
        note(key, 'error', t('discovered.slow'));
      } catch (err) {
        note(key, 'error', errorText('discovered.scan', err));
      }
    }),
  );
  panel.addEventListener('toggle', () => {
    if (panel.open) load().catch((err) => note(key, 'error', errorText('discovered.load', err)));
  });
  return panel;
}

function renderScans(box, site, agents, onAdopted) {
  box.replaceChildren();
  const withScan = agents.filter((a) => a.scan);
  if (!withScan.length) {
    box.append(el('p', { className: 'empty', textContent: t('discovered.none') }));
    return;
  }
  for (const a of withScan) {
    box.append(
      el('p', {
        className: 'muted scan-summary',
        textContent: t('discovered.summary', { agent: a.agentName || a.agent, time: when(a.finished || a.started), count: a.candidates.length, scope: (a.scope || []).join(', ') }),
      }),
    );
    const ul = el('ul', { className: 'candidate-list', attrs: { role: 'list' } });
    for (const c of a.candidates) ul.append(candidateItem(site, a, c, onAdopted));
    box.append(ul);
  }
}

function candidateItem(site, agent, c, onAdopted) {
  const label = c.hostname || c.model || c.addr;
  const facts = [c.addr, c.mac, c.model, c.serial && t('discovered.serial', { serial: c.serial })].filter(Boolean).join(' · ');
  const services = (c.services || []).map((s) => (s.title ? `${s.kind} ${s.port} (${s.title})` : `${s.kind} ${s.port}`)).join(', ');
  const key = `candidate:${agent.agent}:${c.addr}`;
  const item = el(
    'li',
    { className: 'candidate', dataset: { addr: c.addr } },
    el('span', { className: 'candidate-name', textContent: label }),
    el('span', { className: 'muted', textContent: facts }),
    services ? el('span', { className: 'candidate-services', textContent: services }) : null,
  );
  if (c.adopted) {
    item.append(el('span', { className: 'badge on', textContent: t('discovered.adopted', { id: c.adopted }) }));
    return item;
  }
  const name = el('input', { type: 'text', value: c.hostname || c.model || '', className: 'adopt-name', id: `adopt-${agent.agent}-${c.addr}`, attrs: { 'aria-label': t('discovered.name', { addr: c.addr }), required: 'true', maxlength: '200' } });
  const adopt = el('button', { type: 'button', className: 'adopt', textContent: t('discovered.adopt'), dataset: { addr: c.addr }, attrs: { 'aria-label': t('discovered.adoptLabel', { addr: c.addr }) } });
  adopt.addEventListener('click', () =>
    busy(adopt, async () => {
      note(key, '', '');
      if (!name.value.trim()) {
        note(key, 'error', t('discovered.needName'));
        name.focus();
        return;
      }
      try {
        const d = await api('POST', '/v1/devices/adopt', { agent: agent.agent, addr: c.addr, name: name.value.trim() });
        note(key, 'ok', t('discovered.adoptedNow', { name: d.name || d.id }));
        onAdopted?.();
      } catch (err) {
        note(key, 'error', errorText('discovered.adopt', err, { addr: c.addr }));
      }
    }),
  );
  item.append(el('span', { className: 'adopt-form' }, name, adopt), noteSlot(key));
  return item;
}
