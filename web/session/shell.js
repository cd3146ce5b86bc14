// The session shell: the top-level page on the session origin. It joins the
// session over signaling, opens the one RTCPeerConnection to the agent,
// registers the service worker, shows the device's page in a frame under the
// toolbar, and serves the worker's requests over the tunnel.

import { Signaling, candidateData, sessionFromHost } from './signaling.js';
import { Tunnel } from './tunnel.js';
import { createToolbar, explainPath, pathFromStats } from './toolbar.js';
import { authChallenge, askCredentials } from './credentials.js';
import { Recovery } from './recovery.js';

const TOKEN_KEY = 'porthole.session-token';
const WORKER_URL = '/__t/sw.js';
const CONNECT_TIMEOUT = 30_000; // from session.ready to a connected peer
const STATS_EVERY = 2_000;
const RESTORED_NOTICE = 10_000; // how long "restored" stays in the toolbar
// The sandbox keeps the device's page from navigating the shell away (no
// allow-top-navigation) while leaving it same-origin, so the worker controls
// it and its scripts, forms and downloads work.
const SANDBOX = 'allow-scripts allow-forms allow-same-origin allow-popups allow-modals allow-downloads';

const END_TEXT = {
  client: 'You ended the session.',
  agent: 'The agent ended the session.',
  expired: 'The session reached its time limit.',
  agent_lost: 'The agent lost its connection to Porthole.',
  client_lost: 'This window lost its connection to Porthole.',
  admin: 'An administrator ended the session.',
  error: 'The session ended because of an error.',
};

const state = {
  ended: false,
  signaling: null,
  pc: null,
  tunnel: null,
  toolbar: null,
  frame: null,
  statsTimer: null,
  connectTimer: null,
  pendingCandidates: [], // remote candidates that arrived before the answer
  haveAnswer: false,
  endReason: '',
  recovery: null, // ICE restarts after the first connection (recovery.js)
  noticeTimer: null,
};

const AUTH_KEY = 'porthole.session-oauth'; // {state, verifier, back} while the authorization runs
const AUTH_CONFIG = '/__t/auth.json';
const CALLBACK_PATH = '/__t/callback';

/** Base64url without padding, as PKCE wants it. */
function b64url(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * Obtains this session's access token. The app origin is an OAuth 2.1
 * authorization server and this origin one of its clients: the shell runs
 * the authorization-code flow with PKCE (S256), where the technician's login
 * cookie lives, and exchanges the code for a token good for this session
 * only. Resolves never when it navigates away to authorize.
 */
async function obtainToken() {
  const res = await fetch(AUTH_CONFIG, { cache: 'no-store', credentials: 'omit' });
  if (!res.ok) throw coded(res.status === 404 ? 'session_ended' : 'unavailable', 'This session is not available; open the device again from Porthole.');
  const cfg = await res.json();
  // Development mode only: a session token handed over in the fragment.
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fromHash) {
    // The token must not stay in the address bar, the history or a bookmark.
    history.replaceState(null, '', location.pathname + location.search);
    if (cfg.fragmentTokens) {
      sessionStorage.setItem(TOKEN_KEY, fromHash);
      return fromHash;
    }
  }
  if (location.pathname === CALLBACK_PATH) return finishAuthorization(cfg);
  const stored = sessionStorage.getItem(TOKEN_KEY);
  if (stored) return stored;
  await startAuthorization(cfg);
  return new Promise(() => {});
}

async function startAuthorization(cfg) {
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  const state = b64url(crypto.getRandomValues(new Uint8Array(16)));
  sessionStorage.setItem(AUTH_KEY, JSON.stringify({ state, verifier, back: location.pathname + location.search }));
  const url = new URL(cfg.authorizationEndpoint);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: cfg.clientId,
    redirect_uri: cfg.redirectUri,
    code_challenge: b64url(new Uint8Array(digest)),
    code_challenge_method: 'S256',
    state,
  }).toString();
  setStatus('Signing in…');
  location.replace(url.href);
}

async function finishAuthorization(cfg) {
  const params = new URLSearchParams(location.search);
  let saved = null;
  try {
    saved = JSON.parse(sessionStorage.getItem(AUTH_KEY) || 'null');
  } catch {
    saved = null;
  }
  sessionStorage.removeItem(AUTH_KEY);
  // The code must not stay in the address bar or the history.
  history.replaceState(null, '', saved?.back || '/');
  if (!saved || params.get('state') !== saved.state) {
    throw coded('unauthorized', 'The sign-in answer does not belong to this window. Open the device again from Porthole.');
  }
  if (params.get('error')) throw coded('unauthorized', params.get('error_description') || params.get('error'));
  const res = await fetch(cfg.tokenEndpoint, {
    method: 'POST',
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: params.get('code') || '',
      redirect_uri: cfg.redirectUri,
      client_id: cfg.clientId,
      code_verifier: saved.verifier,
    }),
    credentials: 'omit',
    cache: 'no-store',
    referrerPolicy: 'no-referrer',
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok || typeof body.access_token !== 'string') {
    throw coded('unauthorized', body.error_description || body.error || `token request failed (HTTP ${res.status})`);
  }
  sessionStorage.setItem(TOKEN_KEY, body.access_token);
  return body.access_token;
}

async function main() {
  const stage = document.getElementById('stage');
  state.toolbar = createToolbar(document.body, {
    onEnd: () => endSession('client', '', true),
    onExpire: () => endSession('expired', '', false),
  });
  setStatus('Connecting…');
  let token;
  try {
    token = await obtainToken();
  } catch (err) {
    const e = err?.code ? err : coded('unauthorized', err?.message || String(err));
    showEnded('Could not join the session', e.detail || e.message || 'Open the device again from Porthole.', e.code);
    return;
  }
  if (!token) {
    showEnded('No session', 'This page needs a session. Open the device from Porthole to start one.', 'unauthorized');
    return;
  }
  listenToWorker();
  const worker = registerWorker();
  connect(token, worker).catch((err) => fail(err));
  // The frame waits for the worker only: requests it makes before the
  // connection is up simply wait for a channel.
  worker.then(() => showFrame(stage, location.pathname + location.search), (err) => fail(err));
}

async function registerWorker() {
  if (!('serviceWorker' in navigator)) throw coded('unsupported', 'This browser has no service workers; Porthole needs them to show the device.');
  await navigator.serviceWorker.register(WORKER_URL, { scope: '/', type: 'module', updateViaCache: 'none' });
  const reg = await navigator.serviceWorker.ready;
  reg.active.postMessage({ type: 'porthole.shell' });
  return reg;
}

async function connect(token, workerReady) {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const sig = new Signaling({ url: `${proto}//${location.host}/v1/session`, token, session: sessionFromHost(location.hostname) });
  state.signaling = sig;
  sig.onclose = (code) => {
    if (state.ended) return;
    if (!state.pc) {
      showEnded('Could not join the session', `The signaling connection closed (${code}). The link may have expired; open the device again from Porthole.`, 'unavailable');
      return;
    }
    // The data path does not need signaling once connected; say so.
    state.toolbar.notify('Signaling connection lost; the page still works while the connection to the agent holds.', 'warning');
  };
  sig.onmessage = (env) => onSignal(env, workerReady);
  await sig.opened;
  sig.send('hello', { role: 'client', software: 'porthole-web/dev' });
}

async function onSignal(env, workerReady) {
  if (state.ended) return;
  const d = env.data || {};
  switch (env.type) {
    case 'welcome':
      return;
    case 'session.ready':
      return startPeer(d, workerReady).catch((err) => fail(err));
    case 'answer':
      if (!state.pc || d.type !== 'answer' || typeof d.sdp !== 'string') return;
      // An ICE restart's offer may have been sent twice (resent after a
      // retry); the second answer finds the connection stable already.
      if (state.pc.signalingState !== 'have-local-offer') return;
      try {
        await state.pc.setRemoteDescription({ type: 'answer', sdp: d.sdp });
      } catch (err) {
        if (!state.recovery?.recovering) throw err;
        console.warn('porthole: answer refused during an ICE restart:', err.message);
        return;
      }
      state.haveAnswer = true;
      for (const c of state.pendingCandidates.splice(0)) await addCandidate(c);
      return;
    case 'candidate':
      if (!state.pc) return;
      if (!state.haveAnswer) state.pendingCandidates.push(d);
      else await addCandidate(d);
      return;
    case 'session.end':
      return endSession(typeof d.reason === 'string' ? d.reason : 'error', typeof d.message === 'string' ? d.message : '', false);
    case 'error': {
      const err = coded(d.code || 'internal', d.message || '');
      if (!state.pc) return fail(err);
      state.toolbar.notify(`${err.detail || 'Error'} (${err.code})`, 'warning');
      return;
    }
    default:
  }
}

async function addCandidate(d) {
  try {
    // {candidate: ""} is the end-of-candidates form; browsers take it as is.
    await state.pc.addIceCandidate(d.candidate ? d : { candidate: '' });
  } catch (err) {
    console.warn('porthole: candidate refused:', err.message);
  }
}

async function startPeer(ready, workerReady) {
  if (state.pc) return;
  const expires = new Date(ready.expires);
  document.title = `${ready.device || 'Device'} — Porthole`;
  state.toolbar.setDevice(ready.device || '');
  if (!Number.isNaN(expires.getTime())) {
    state.toolbar.setExpires(expires);
    workerReady.then((reg) => reg.active?.postMessage({ type: 'porthole.shell', expires: expires.getTime() })).catch(() => {});
  }
  const iceServers = Array.isArray(ready.iceServers) ? ready.iceServers : [];
  const pc = new RTCPeerConnection({ iceServers });
  state.pc = pc;
  state.tunnel = new Tunnel(pc);
  state.tunnel.prime();
  wakeReadyWaiters();
  pc.onicecandidate = (e) => state.signaling.send('candidate', candidateData(e.candidate));
  state.recovery = new Recovery({
    restart: () => restartIce(pc),
    notice: (text, level) => {
      clearTimeout(state.noticeTimer);
      state.toolbar.notify(text, level);
      document.body.dataset.recovery = level === 'warning' ? 'reconnecting' : '';
      // "Restored" goes away after a while; "reconnecting…" stays.
      if (text && level !== 'warning') state.noticeTimer = setTimeout(() => state.toolbar.notify(''), RESTORED_NOTICE);
    },
    giveUp: (message) => endSession('error', message, true),
  });
  pc.onconnectionstatechange = () => {
    const st = pc.connectionState;
    state.recovery.update(st);
    switch (st) {
      case 'connected':
        clearTimeout(state.connectTimer);
        setStatus('');
        pollStats();
        break;
      case 'failed':
        // After the first connection, recovery restarts ICE instead.
        if (!state.recovery.established) endSession('error', 'The connection to the agent failed.', true);
        break;
      default:
    }
  };
  state.connectTimer = setTimeout(() => {
    if (pc.connectionState !== 'connected') endSession('error', 'No network path to the agent could be established.', true);
  }, CONNECT_TIMEOUT);
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  state.signaling.send('offer', { type: 'offer', sdp: pc.localDescription.sdp });
}

/**
 * One ICE restart: new ICE credentials in a new offer, on the same peer
 * connection (same DTLS certificate, so the agent renegotiates rather than
 * replacing it). An offer still unanswered from the previous attempt is sent
 * again as it is (it may have been lost while the agent reconnected to
 * signaling); its SDP carries the candidates gathered so far.
 */
async function restartIce(pc) {
  if (state.ended || pc !== state.pc || pc.connectionState === 'closed') return;
  state.haveAnswer = false;
  state.pendingCandidates.length = 0;
  if (pc.signalingState === 'have-local-offer' && pc.localDescription) {
    state.signaling.send('offer', { type: 'offer', sdp: pc.localDescription.sdp });
    return;
  }
  pc.restartIce();
  const offer = await pc.createOffer({ iceRestart: true });
  await pc.setLocalDescription(offer);
  state.signaling.send('offer', { type: 'offer', sdp: pc.localDescription.sdp });
}

function pollStats() {
  if (state.statsTimer) return;
  const poll = async () => {
    if (!state.pc || state.ended) return;
    try {
      const report = await state.pc.getStats();
      state.toolbar.setPath(pathFromStats(report), explainPath(report));
    } catch {
      // stats are decoration
    }
  };
  poll();
  state.statsTimer = setInterval(poll, STATS_EVERY);
}

function showFrame(stage, path) {
  if (state.ended) return;
  const frame = document.createElement('iframe');
  frame.className = 'device';
  frame.setAttribute('sandbox', SANDBOX);
  frame.title = 'Device page';
  frame.addEventListener('load', () => onFrameLoad(frame));
  frame.src = path;
  stage.replaceChildren(frame);
  state.frame = frame;
}

function onFrameLoad(frame) {
  let w;
  try {
    w = frame.contentWindow;
    const here = w.location.pathname + w.location.search;
    state.toolbar.setLocation(here);
    // Reloading the shell brings back the page the technician was on.
    if (!state.ended) history.replaceState(null, '', here + w.location.hash);
  } catch {
    return; // not same-origin: an error page of the browser
  }
  auth.declined = false;
  hookWebSocket(w);
}

/**
 * A service worker cannot carry WebSockets, so a device page that opens one
 * would fail silently. The frame is same-origin, so wrap its constructor and
 * say so in the toolbar. The hook is set again whenever the frame's page
 * asks for something (serve) and at its load event, so a script the page
 * loads sees it; a socket opened by an inline script before the page's
 * first subresource is not seen, and the server answers its upgrade with 501.
 */
function hookWebSocket(w) {
  if (!w.WebSocket || w.WebSocket.__porthole) return;
  const Native = w.WebSocket;
  const Wrapped = function (...args) {
    state.toolbar.notify('This page opened a WebSocket, which Porthole cannot carry; live updates on it will not work.', 'warning');
    return new Native(...args);
  };
  Wrapped.prototype = Native.prototype;
  Object.assign(Wrapped, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3, __porthole: true });
  w.WebSocket = Wrapped;
}

/** Serves the worker's requests; anything else on this channel is ignored. */
function listenToWorker() {
  if (!('serviceWorker' in navigator)) return;
  navigator.serviceWorker.addEventListener('message', (e) => {
    // Only our own worker speaks this protocol. The device's page could post
    // to us through window.postMessage, which we never listen to.
    const src = e.source;
    if (!(src instanceof ServiceWorker) || new URL(src.scriptURL).pathname !== WORKER_URL) return;
    const m = e.data;
    const port = e.ports[0];
    if (!port || !m || m.type !== 'porthole.fetch') return;
    serve(m, port);
  });
  navigator.serviceWorker.startMessages();
}

async function serve(m, port) {
  if (state.ended || !state.tunnel) {
    // Requests before session.ready wait for the tunnel; after the end they
    // are refused, so the device's page cannot outlive the session.
    if (state.ended) return port.postMessage({ type: 'error', code: 'session_ended', message: state.endReason || 'session_ended' });
    await tunnelReady();
    if (state.ended) return port.postMessage({ type: 'error', code: 'session_ended', message: state.endReason || 'session_ended' });
  }
  const ac = new AbortController();
  port.onmessage = (e) => {
    if (e.data?.type === 'abort') ac.abort();
  };
  try {
    if (typeof m.method !== 'string' || typeof m.target !== 'string' || !Array.isArray(m.headers)) throw coded('bad_request', 'malformed request from the worker');
    hookFrame();
    const body = m.body instanceof ReadableStream ? m.body : null;
    const req = {
      method: m.method,
      target: m.target,
      headers: m.headers,
      cookie: typeof m.cookie === 'string' ? m.cookie : '',
      body,
      signal: ac.signal,
    };
    const first = await state.tunnel.fetch({ ...req, credentials: takeCredentials() });
    const { head, body: resBody } = await authenticate(req, first.head, first.body);
    const reply = { type: 'response', status: head.status, header: head.header, cookies: head.cookies, body: resBody };
    port.postMessage(reply, resBody ? [resBody] : []);
  } catch (err) {
    port.postMessage({ type: 'error', code: err.code || 'internal', message: err.detail || err.message || '' });
  }
}

// Device authentication (credentials.js): one dialog at a time, shared by
// the requests that meet a 401 meanwhile; after a cancel, no more dialogs
// until the frame loads another page.
const auth = { asking: null, declined: false, pending: '' };

/** Credentials waiting for a request to carry them to the agent. */
function takeCredentials() {
  const c = auth.pending;
  auth.pending = '';
  return c || undefined;
}

/**
 * Answers a Basic or Digest 401: asks for credentials and repeats the
 * request with them (GET and HEAD; another method's body is gone, so its
 * credentials go with the next request). Returns the response to give the
 * page: the device's 401 as it is if the technician cancels.
 */
async function authenticate(req, head, body) {
  let challenge = head.status === 401 ? authChallenge(head.header) : null;
  const replayable = (req.method === 'GET' || req.method === 'HEAD') && !req.body;
  for (let retry = false, i = 0; challenge && i < 3 && !auth.declined && !state.ended; i++, retry = true) {
    auth.asking ||= askCredentials(document, {
      realm: challenge.realm,
      device: document.querySelector('.toolbar .device')?.textContent || '',
      retry,
    }).finally(() => {
      auth.asking = null;
    });
    const creds = await auth.asking;
    if (!creds) {
      auth.declined = true;
      break;
    }
    if (!replayable) {
      auth.pending = creds;
      break;
    }
    body?.cancel().catch(() => {});
    ({ head, body } = await state.tunnel.fetch({ ...req, credentials: creds }));
    challenge = head.status === 401 ? authChallenge(head.header) : null;
  }
  return { head, body };
}

/** Hooks the frame's current document (see hookWebSocket). */
function hookFrame() {
  try {
    if (state.frame?.contentWindow) hookWebSocket(state.frame.contentWindow);
  } catch {
    // not same-origin: a browser error page
  }
}

// Requests the worker sends before session.ready wait here for the tunnel.
const readyWaiters = [];
function tunnelReady() {
  if (state.tunnel || state.ended) return Promise.resolve();
  return new Promise((resolve) => readyWaiters.push(resolve));
}
function wakeReadyWaiters() {
  for (const w of readyWaiters.splice(0)) w();
}

function setStatus(text) {
  const s = document.getElementById('status');
  if (s) {
    s.textContent = text;
    s.hidden = !text;
  }
}

function coded(code, message) {
  const e = new Error(message ? `${code}: ${message}` : code);
  e.code = code;
  e.detail = message;
  return e;
}

function fail(err) {
  if (state.ended) return;
  endSession('error', err.detail || err.message || String(err), true, err.code);
}

/**
 * Ends the session once: tells signaling when we are the ones ending it,
 * closes every channel and the peer connection, tells the worker to refuse
 * every further request, and shows why.
 */
function endSession(reason, message, tellSignaling, code) {
  if (state.ended) return;
  state.ended = true;
  state.endReason = reason;
  if (tellSignaling && state.signaling) {
    const end = { reason: reason === 'client' ? 'client' : 'error' };
    if (message) end.message = message.slice(0, 500);
    state.signaling.send('session.end', end);
  }
  navigator.serviceWorker?.controller?.postMessage({ type: 'porthole.ended', reason });
  navigator.serviceWorker?.ready.then((reg) => reg.active?.postMessage({ type: 'porthole.ended', reason })).catch(() => {});
  clearInterval(state.statsTimer);
  clearTimeout(state.connectTimer);
  clearTimeout(state.noticeTimer);
  state.recovery?.stop();
  state.tunnel?.close();
  state.pc?.close();
  // Let session.end leave before the socket closes.
  setTimeout(() => state.signaling?.close(), 200);
  sessionStorage.removeItem(TOKEN_KEY);
  wakeReadyWaiters();
  state.toolbar.stop();
  state.toolbar.notify('');
  const text = [END_TEXT[reason] || 'The session is over.', message].filter(Boolean).join(' ');
  showEnded('Session ended', text, code || reason);
}

function showEnded(title, text, code) {
  setStatus('');
  const panel = document.createElement('section');
  panel.className = 'ended';
  const h = document.createElement('h1');
  h.textContent = title;
  const p = document.createElement('p');
  p.textContent = text;
  panel.append(h, p);
  if (code) {
    const c = document.createElement('p');
    c.className = 'code';
    c.append('Code: ');
    const k = document.createElement('code');
    k.textContent = code;
    c.append(k);
    panel.append(c);
  }
  document.getElementById('stage').replaceChildren(panel);
  state.frame = null;
}

main().catch((err) => fail(err));
