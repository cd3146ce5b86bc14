// The app page: the technician's device list with live status and an "Open"
// button that creates a session and opens its own origin. Until the identity
// work lands, the technician's credential is a bearer token handed over in
// the URL fragment (#token=…) or pasted into the form.

const TOKEN_KEY = 'porthole.token';
const POLL_EVERY = 5_000;

let token = '';
let pollTimer = null;

/** Takes the token from #token=… (then drops it from the URL) or sessionStorage. */
function takeToken() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fromHash) {
    sessionStorage.setItem(TOKEN_KEY, fromHash);
    history.replaceState(null, '', location.pathname + location.search);
    return fromHash;
  }
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

/** An API error as readable text with its code. */
class APIError extends Error {
  constructor(status, code, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code || `http_${status}`;
  }
}

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: {
      Authorization: `Bearer ${token}`,
      ...(body ? { 'Content-Type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
    credentials: 'same-origin',
    cache: 'no-store',
  });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: fall through with the status
  }
  if (!res.ok) throw new APIError(res.status, data?.code, data?.message || text.slice(0, 200));
  return data;
}

function showMessage(text, kind = 'error', link) {
  const m = document.getElementById('message');
  m.replaceChildren(text);
  if (link) {
    const a = document.createElement('a');
    a.href = link;
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    a.textContent = 'Open the session';
    m.append(' ', a);
  }
  m.dataset.kind = kind;
  m.hidden = !text;
}

function describe(err) {
  return err instanceof APIError ? `${err.message} (${err.code})` : `${err.message || err} (network)`;
}

/** Renders the device list; every field is set as text. */
function render(list) {
  const rows = document.getElementById('device-rows');
  const devices = Array.isArray(list?.devices) ? list.devices : [];
  devices.sort((a, b) => (a.name || a.id).localeCompare(b.name || b.id));
  rows.replaceChildren(...devices.map(row));
  document.getElementById('empty').hidden = devices.length > 0;
}

function cell(text, cls) {
  const td = document.createElement('td');
  if (cls) td.className = cls;
  td.textContent = text;
  return td;
}

function row(d) {
  const tr = document.createElement('tr');
  const status = document.createElement('td');
  const dot = document.createElement('span');
  dot.className = d.online ? 'dot online' : 'dot';
  status.append(dot, d.online ? 'online' : 'offline');
  const open = document.createElement('button');
  open.type = 'button';
  open.textContent = 'Open';
  open.disabled = !d.online;
  open.addEventListener('click', () => openSession(d, open));
  const action = document.createElement('td');
  action.append(open);
  tr.append(status, cell(d.name || d.id), cell(d.id, 'id'), cell(d.agent || '', 'agent'), action);
  return tr;
}

/** Where the session lives: the origin signaling gave, or <session>.localhost in development. */
function sessionOrigin(info) {
  if (info.origin) return info.origin;
  if (location.hostname === 'localhost' || location.hostname === '127.0.0.1') {
    return `${location.protocol}//${info.session}.localhost${location.port ? `:${location.port}` : ''}`;
  }
  throw new APIError(500, 'internal', 'Signaling has no session domain configured');
}

async function openSession(device, button) {
  button.disabled = true;
  showMessage('');
  try {
    const info = await api('POST', '/v1/sessions', { device: device.id });
    // The token travels in the fragment, which never reaches a server; the
    // shell drops it from the address bar at once.
    const url = `${sessionOrigin(info)}/#token=${encodeURIComponent(info.token)}`;
    if (document.getElementById('same-tab').checked) {
      location.assign(url);
      return;
    }
    window.open(url, '_blank', 'noopener,noreferrer');
    // window.open with noopener cannot report a blocked popup; offer a link.
    showMessage(`Session for ${device.name || device.id} opened in a new tab.`, 'info', url);
  } catch (err) {
    showMessage(`Could not open ${device.name || device.id}: ${describe(err)}`);
  } finally {
    button.disabled = false;
  }
}

async function refresh() {
  try {
    render(await api('GET', '/v1/devices'));
    const m = document.getElementById('message');
    if (m.dataset.kind === 'poll') showMessage('');
  } catch (err) {
    if (err instanceof APIError && err.status === 401) {
      signOut(`Your token was refused: ${describe(err)}`);
      return;
    }
    showMessage(`Could not load devices: ${describe(err)}`, 'poll');
  }
}

function signOut(reason) {
  clearInterval(pollTimer);
  pollTimer = null;
  token = '';
  sessionStorage.removeItem(TOKEN_KEY);
  document.getElementById('devices').hidden = true;
  document.getElementById('signin').hidden = false;
  if (reason) {
    const p = document.querySelector('#signin p');
    p.textContent = reason;
  }
}

function start() {
  document.getElementById('signin').hidden = true;
  document.getElementById('devices').hidden = false;
  refresh();
  pollTimer = setInterval(refresh, POLL_EVERY);
}

document.getElementById('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = document.getElementById('token-input');
  token = input.value.trim();
  input.value = '';
  if (!token) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  start();
});

token = takeToken();
if (token) start();
else signOut('');
