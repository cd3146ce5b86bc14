// Agents and their devices: how a device's health (the agent's last check
// of reachability and identity) reads in the device list, and the admin
// tools to enroll a new agent (a one-time token shown once, with the
// command to run on the device) and to revoke one. Every value is set as
// text.

/**
 * healthView(device) → {text, kind, title}: the device list's
 * reachability cell. kind is "ok", "bad" or "unknown".
 */
export function healthView(d) {
  const h = d?.health;
  if (!h) return { text: 'not checked yet', kind: 'unknown', title: 'The agent has not reported a check of this device.' };
  const when = h.checked ? `checked ${new Date(h.checked).toLocaleString()}` : '';
  // Reachable with a problem: it answered, but as another device.
  if (h.reachable && h.problem) return { text: `identity check failed: ${h.problem}`, kind: 'bad', title: when };
  if (h.reachable) return { text: 'reachable', kind: 'ok', title: when };
  const text = h.problem ? `unreachable: ${h.problem}` : 'unreachable';
  return { text, kind: 'bad', title: when };
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

/**
 * setupAgentAdmin wires the enrollment form once. deps: {api, el, $,
 * showMessage, describe, refresh}.
 */
export function setupAgentAdmin(deps) {
  const { api, $, showMessage, describe, refresh } = deps;
  $('enroll-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = enrollmentRequest({
      site: $('enroll-site').value,
      agent: $('enroll-agent').value.trim(),
      name: $('enroll-name').value.trim(),
      hours: $('enroll-hours').value,
    });
    try {
      const res = await api('POST', '/v1/enrollments', body);
      e.target.reset();
      showEnrollment(deps, res);
      showMessage('');
      refresh();
    } catch (err) {
      showMessage(`Could not create the enrollment token: ${describe(err)}`);
    }
  });
  $('enroll-copy').addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText($('enroll-command').textContent);
      $('enroll-copy').textContent = 'Copied';
    } catch {
      // No clipboard (insecure context, or refused): select the text instead.
      const r = document.createRange();
      r.selectNodeContents($('enroll-command'));
      getSelection().removeAllRanges();
      getSelection().addRange(r);
    }
  });
  $('enroll-done').addEventListener('click', () => {
    // The token is shown once: gone from the page when dismissed.
    $('enroll-command').textContent = '';
    $('enroll-result').hidden = true;
  });
}

function showEnrollment({ $ }, res) {
  $('enroll-command').textContent = enrollCommand(location.origin, res.token);
  $('enroll-for').textContent = `Agent ${res.agent} in site ${res.site}; the token works once, until ${new Date(res.expires).toLocaleString()}.`;
  $('enroll-copy').textContent = 'Copy';
  $('enroll-result').hidden = false;
  $('enroll-result').scrollIntoView({ block: 'center' });
}

/** The sites of the enrollment form, keeping the choice across refreshes. */
export function renderEnrollSites({ $, el }, sites) {
  const sel = $('enroll-site');
  const keep = sel.value;
  sel.replaceChildren(...sites.map((s) => el('option', { value: s.id, textContent: s.name || s.id })));
  if (keep) sel.value = keep;
}

/** revokeButton: the agents table's Revoke action. */
export function revokeButton({ api, el, showMessage, describe, refresh }, agent) {
  const b = el('button', { type: 'button', textContent: 'Revoke', className: 'revoke', dataset: { agent: agent.id } });
  b.addEventListener('click', async () => {
    if (!confirm(`Revoke agent ${agent.name || agent.id}? It is disconnected now and refused from then on; enrolling it again needs a new token.`)) return;
    b.disabled = true;
    try {
      const res = await api('POST', `/v1/agents/${encodeURIComponent(agent.id)}/revoke`);
      showMessage(`Agent ${res.agent} revoked${res.disconnected ? ' and disconnected' : ''}.`, 'info');
    } catch (err) {
      showMessage(`Could not revoke ${agent.name || agent.id}: ${describe(err)}`);
    }
    refresh();
  });
  return b;
}
