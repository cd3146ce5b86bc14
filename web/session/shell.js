// The session window, on the session's SHELL origin
// (https://shell-<id>.D). It holds the session's secrets — the session
// token, its bind cookie (HttpOnly: not even this page reads it), the TURN
// credentials — and the session's one RTCPeerConnection, and it never runs
// device content. The device's pages run on the device origin
// (https://<id>.D), which holds nothing: in this window's sandboxed frame,
// and in tabs popped out of it ("Open in its own tab"). Their requests
// reach this window through the service worker (device origin, sw.js), on
// a MessagePort this window handed it through the relay frame before any
// device page existed (relay.js, protocol.js MSG.port), or through the
// relay itself; it carries them over the tunnel and answers each on the
// MessagePort it came with.
//
// From the device origin this window takes nothing but tunnel requests
// from its relay and display-only hints from the page shim in its frame
// (protocol.js). It tells the popped-out tabs' bars (bar.js, this origin)
// what the toolbar shows, over a BroadcastChannel.

import { Signaling, candidateData, sessionFromHost } from './signaling.js';
import { Tunnel, priorityOf } from './tunnel.js';
import { createToolbar, explainPath, pathFromStats, pathLabel } from './toolbar.js';
import { authChallenge, askCredentials } from './credentials.js';
import { Recovery } from './recovery.js';
import { relayOf, iceServersOf, relayLostText, REFRESH_WAIT, MAX_REFRESHES, REFRESH_FRESH, MAX_FAILED_RELAYS } from './relayswitch.js';
import { rejoin } from './rejoin.js';
import { collectable, collectSmall } from './smallbody.js';
import { MSG, pageHint, deviceOriginOf } from './protocol.js';
import * as tokens from './tokenstore.js';
import { serveWebSocketPort } from './wsport.js';
import { keepBody, REPLAY_LIMIT } from './replay.js';
import { showScreen } from './screen.js';
import { t } from './messages.js';
import { showTerminal } from './terminal.js';
import {
  againHref, appOrigin, b64url, barRequest, bindError, callbackError, coded, endedReply, endNotice, endOf, endText, errorReply,
  failAction, fragmentToken, joinError, messageSource, notJoinedTitle, readyOf, relayReadyOf, requestOf, savedAuthorization,
  sessionIDOf, tokenAnswer, viewOf, muxPort,
} from './shellflow.js';

const BOUND_KEY = 'porthole.session-bound'; // '1': the kept token is bound to this window's cookie
const BIND_PATH = '/__t/bind';
const WIPE_PATH = '/__t/wipe';
const RELAY_PATH = '/__t/relay.html';
const BAR_CHANNEL = 'porthole.bar';
const DEVICE_ORIGIN = deviceOriginOf(location);
const CONNECT_TIMEOUT = 30_000; // from session.ready to a connected peer
const RELAY_TIMEOUT = 20_000; // from session.ready to an active worker
const WIPE_TIMEOUT = 3_000; // how long the end waits for the worker's wipe
const PORT_WAIT = 1_000; // how long the device frame waits for the worker to take this window's port
const STATS_EVERY = 2_000;
const RESTORED_NOTICE = 10_000; // how long "restored" stays in the toolbar
// The device frame is cross-origin (device origin), so its scripts cannot
// reach this window. The sandbox withholds top navigation, which a
// same-site frame would otherwise have (measured), and leaves the rest so
// the device's page works: same-origin with its own origin (the worker
// controls it), scripts, forms, popups (which become normal tabs on the
// device origin, controlled by the same worker), dialogs, downloads.
const SANDBOX = 'allow-scripts allow-forms allow-same-origin allow-popups allow-popups-to-escape-sandbox allow-modals allow-downloads';

const state = {
  ended: false,
  joined: false, // signaling admitted this window: it holds the session
  signaling: null,
  pc: null,
  tunnel: null,
  toolbar: null,
  frame: null,
  relay: null,
  workerPort: null, // the worker posts its requests here (protocol.js MSG.port)
  muxed: new Map(), // id → reply port of each unanswered request sent on workerPort (muxPort)
  relayReady: null, // resolves when the worker is active and knows the relay
  relayReadyResolve: null,
  location: '', // the device frame's path, as its page shim says
  pageNotice: false, // the toolbar's notice is about the frame's current page
  statsTimer: null,
  connectTimer: null,
  pendingCandidates: [], // remote candidates that arrived before the answer
  haveAnswer: false,
  endReason: '',
  recovery: null, // ICE restarts after the first connection (recovery.js)
  iceServers: [], // the session's ICE servers: session.ready's, then the latest ice.servers
  pathRelay: null, // TURN URLs of the relay the path went through when last connected (relayswitch.js)
  refreshedAt: 0, // Date.now() of the last ice.servers applied
  refreshWaiter: null, // resolves with the relays of the next ice.servers
  sitePath: null, // the agent's own report of its end of the path (session.path)
  noticeTimer: null,
  barChannel: null,
  bar: { device: '', expires: 0, path: '', kind: '', ended: '' },
  app: '', // the app's origin (from auth.json): where a new session is opened
  device: { id: '', name: '', site: '' }, // as session.ready names them
  terminal: null, // the SSH terminal (terminal.js) when the session shows one
  screen: null, // the VNC viewer (screen.js) when the session shows the device's screen
  served: false, // a device request reached this window (the setup timeline's step)
  relayLoaded: Promise.resolve(), // the relay frame listens (startRelay)
  relayUp: () => {},
  portTaken: null, // the worker has this window's port, or gave up waiting (joinRelay)
  ticketDone: () => {},
  ticketRedeemed: null, // the relay ticket was redeemed (or refused): the device cookie is set
  token: '', // the session token, for rejoining signaling (rejoin.js)
  drain: null, // the drain message of the node that is leaving, until rejoined
  rejoining: false, // signaling closed after the join; rejoin.js is at it
  sigNotice: false, // the toolbar's notice is about rejoining signaling
};
state.ticketRedeemed = new Promise((resolve) => {
  state.ticketDone = () => resolve(undefined);
});

/** Resolves once the peer connection first connects: the viewers wait for it. */
/** @type {(v?: any) => void} */
let markConnected = () => {};
const connected = new Promise((resolve) => {
  markConnected = resolve;
});

const AUTH_KEY = 'porthole.session-oauth'; // {state, verifier, back} while the authorization runs
const AUTH_CONFIG = '/__t/auth.json';
const CALLBACK_PATH = '/__t/callback';

/**
 * Obtains this session's access token. The app origin is an OAuth 2.1
 * authorization server and this origin one of its clients: the shell runs
 * the authorization-code flow with PKCE (S256), where the technician's login
 * cookie lives, and exchanges the code for a token good for this session
 * only. Resolves never when it navigates away to authorize.
 */
async function obtainToken() {
  const res = await fetch(AUTH_CONFIG, { cache: 'no-store', credentials: 'omit' });
  if (!res.ok) throw coded(res.status === 404 ? 'session_ended' : 'unavailable', t('join.unavailable'));
  const cfg = await res.json();
  state.app = appOrigin(cfg.authorizationEndpoint);
  // Development mode only: a session token handed over in the fragment.
  const fromHash = fragmentToken(location.hash);
  if (fromHash) {
    // The token must not stay in the address bar, the history or a bookmark.
    history.replaceState(null, '', location.pathname + location.search);
    if (cfg.fragmentTokens) {
      keepToken(fromHash);
      return fromHash;
    }
  }
  if (location.pathname === CALLBACK_PATH) return finishAuthorization(cfg);
  const stored = tokens.loadToken(window, sessionStorage);
  if (stored) return stored;
  await startAuthorization(cfg);
  return new Promise(() => {});
}

/** This window's session ID: the first label of shell-<session>.<sessions domain>. */
function sessionID() {
  return sessionIDOf(location.hostname);
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
  setStatus(t('status.signingIn'));
  location.replace(url.href);
}

async function finishAuthorization(cfg) {
  const params = new URLSearchParams(location.search);
  const saved = savedAuthorization(sessionStorage.getItem(AUTH_KEY));
  sessionStorage.removeItem(AUTH_KEY);
  // The code must not stay in the address bar or the history.
  history.replaceState(null, '', saved?.back || '/');
  const refused = callbackError(params, saved);
  if (refused) throw refused;
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
  const answer = tokenAnswer(res.ok, res.status, await res.json().catch(() => ({})));
  if (answer.error) throw answer.error;
  keepToken(answer.token);
  return answer.token;
}

/**
 * Binds the token to this window (once per token): signaling answers with
 * an HttpOnly cookie of this origin, and from then on the token opens the
 * session only together with it. A token copied out of this window is
 * useless.
 */
async function bindToken(token) {
  if (sessionStorage.getItem(BOUND_KEY) === '1') return;
  const res = await fetch(BIND_PATH, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}` },
    credentials: 'same-origin',
    cache: 'no-store',
  });
  if (res.status === 204) {
    sessionStorage.setItem(BOUND_KEY, '1');
    return;
  }
  throw bindError(res.status, await res.json().catch(() => ({})));
}

// A new token is not bound yet, whatever a copy of this tab's
// sessionStorage (a popup's) says: the mark goes with the token.
function keepToken(token) {
  tokens.saveToken(window, sessionStorage, token);
  sessionStorage.removeItem(BOUND_KEY);
}

function forgetToken() {
  tokens.forgetToken(window, sessionStorage);
  sessionStorage.removeItem(BOUND_KEY);
}

/**
 * Marks one step of the session's setup (performance.mark
 * porthole.setup.<name>, on this window's clock): the bench reads the
 * timeline (integration/bench/browser.go), and so can anyone in DevTools.
 * Names and times only; nothing of the session.
 */
function step(name) {
  performance.mark(`porthole.setup.${name}`);
}

async function main() {
  step('script');
  state.toolbar = createToolbar(document.body, {
    onEnd: () => endSession('client', '', true),
    onExpire: () => endSession('expired', '', false),
    onPopOut: () => popOut(),
  });
  state.relayReady = new Promise((resolve, reject) => {
    state.relayReadyResolve = { resolve, reject };
  });
  state.relayReady.catch(() => {});
  // The relay frame and its worker's registration (the slowest part of the
  // setup: the worker's scripts, its install) start now, alongside the
  // token, signaling and the peer connection, not after session.ready. The
  // relay announces itself to the worker only once this window has joined
  // (joinRelay): until then it has registered the worker and nothing else.
  window.addEventListener('message', onMessage);
  startRelay();
  setStatus(t('status.connecting'));
  let token;
  try {
    token = await obtainToken();
    step('token');
    if (token) await bindToken(token);
    step('bound');
  } catch (err) {
    const e = joinError(err);
    forgetToken();
    dropRelay();
    showEnded(notJoinedTitle(e.code), e.detail || e.message || t('ended.openAgain'), e.code);
    return;
  }
  if (!token) {
    dropRelay();
    showEnded(t('ended.noSession'), t('ended.noSessionText'), 'unauthorized');
    return;
  }
  openBarChannel();
  connect(token).catch((err) => fail(err));
  // The frame waits for the worker (and the device cookie, for what the
  // worker does not carry) only: requests it makes before the peer
  // connection is up simply wait for the tunnel.
  const path = location.pathname === CALLBACK_PATH ? '/' : location.pathname + location.search;
  const view = viewOf(path, location.origin);
  if (view) {
    connected.then(() => showView(view), (err) => fail(err));
    return;
  }
  Promise.all([state.relayReady, state.ticketRedeemed]).then(() => showFrame(path), (err) => fail(err));
}

async function showView(view) {
  if (state.ended) return;
  setStatus('');
  document.body.dataset.view = view.kind;
  if (view.kind === 'ssh') {
    state.toolbar.setLocation(t('terminal.location', { port: view.port }));
    state.terminal = await showTerminal({
      pc: state.pc,
      stage: document.getElementById('stage'),
      port: view.port,
      notify: (text, level) => state.toolbar.notify(text, level),
    });
    return;
  }
  state.toolbar.setLocation(t(view.viewOnly ? 'view.vncViewOnly' : 'view.vnc', { port: view.port }));
  state.screen = await showScreen({
    pc: state.pc,
    stage: document.getElementById('stage'),
    port: view.port,
    viewOnly: view.viewOnly,
    notify: (text, level) => state.toolbar.notify(text, level),
  });
}

function openSignaling(token) {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return new Signaling({ url: `${proto}//${location.host}/v1/session`, token, session: sessionFromHost(location.hostname) });
}

async function connect(token) {
  state.token = token;
  const sig = openSignaling(token);
  state.signaling = sig;
  sig.onclose = (code) => {
    if (state.ended) return;
    if (!state.joined) {
      showEnded(t('ended.notJoined'), t('join.signalingClosed', { code }), 'unavailable');
      return;
    }
    resumeSignaling(code);
  };
  sig.onmessage = (env) => onSignal(env);
  await sig.opened;
  step('signaling-open');
  sig.send('hello', { role: 'client', software: 'porthole-web/dev' });
}

/**
 * Signaling closed after this window joined: a node that drains (1012,
 * after a drain message) or died. The data path goes on; the window
 * rejoins through the same address (the load balancer sends it to a node
 * that serves the session now), with its token and bind cookie, so the
 * ICE restarts, the end and the toolbar work again. The device's page
 * sees nothing of it: same peer connection, no reload.
 */
async function resumeSignaling(code) {
  if (state.rejoining || state.ended) return;
  state.rejoining = true;
  document.body.dataset.signaling = 'rejoining';
  const drained = !!state.drain || code === 1012;
  state.sigNotice = true;
  state.toolbar.notify(t(drained ? 'notice.signalingRestarting' : 'notice.signalingReconnecting'), 'info');
  const r = await rejoin({ open: () => openSignaling(state.token), drain: state.drain, stopped: () => state.ended });
  state.rejoining = false;
  state.drain = null;
  if (state.ended) return;
  if (r.ended) return endSession(endOf(r.ended).reason, endOf(r.ended).message, false);
  if (r.gaveUp) {
    document.body.dataset.signaling = 'lost';
    console.warn('porthole: signaling could not be rejoined:', r.error?.message);
    state.toolbar.notify(t('notice.signalingLost'), 'warning');
    return;
  }
  const sig = r.sig;
  state.signaling = sig;
  sig.onmessage = (env) => onSignal(env);
  sig.onclose = (c) => {
    if (!state.ended) resumeSignaling(c);
  };
  document.body.dataset.signaling = 'live';
  document.body.dataset.rejoins = String(Number(document.body.dataset.rejoins || 0) + 1);
  if (state.sigNotice) {
    state.sigNotice = false;
    state.toolbar.notify('');
  }
  // An ICE restart's offer sent while signaling was away went nowhere;
  // recovery sends it again on its next attempt.
}

/** A refusal before this window joined: it never held the session. */
function refused(err) {
  if (state.ended) return;
  state.ended = true;
  forgetToken();
  dropRelay();
  state.signaling?.close();
  state.toolbar.stop();
  showEnded(notJoinedTitle(err.code), err.detail || err.message, err.code);
}

async function onSignal(env) {
  if (state.ended) return;
  const d = env.data || {};
  switch (env.type) {
    case 'welcome':
      return;
    case 'drain':
      // The node is leaving; its close (1012) follows, and resumeSignaling
      // rejoins, after the retry hint.
      state.drain = d;
      return;
    case 'session.ready':
      step('session-ready');
      joinRelay(readyOf(d).relayTicket);
      return startPeer(d).catch((err) => fail(err));
    case 'answer':
      if (!state.pc || d.type !== 'answer' || typeof d.sdp !== 'string') return;
      // An ICE restart's offer may have been sent twice (resent after a
      // retry); the second answer finds the connection stable already.
      if (state.pc.signalingState !== 'have-local-offer') return;
      try {
        await state.pc.setRemoteDescription({ type: 'answer', sdp: d.sdp });
        step('answer');
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
    case 'session.path':
      // How the agent reaches the relay and why, which getStats cannot
      // tell from this side (a proxy at the site, TLS only).
      state.sitePath = d;
      return;
    case 'ice.servers':
      return applyICEServers(d);
    case 'session.end': {
      const end = endOf(d);
      return endSession(end.reason, end.message, false);
    }
    case 'error': {
      const err = coded(d.code || 'internal', d.message || '');
      // Refused before joining (another window holds the session, a token
      // that is not this window's): say so, and touch nothing of the
      // session, which belongs to another window.
      if (!state.joined) return refused(err);
      if (!state.pc) return fail(err);
      // Both peers asked for new relays at once: the first answer went to
      // both, so the refusal of the second is no news.
      if (err.code === 'rate_limited' && state.recovery?.recovering) return;
      state.toolbar.notify(t('notice.error', { detail: err.detail || t('notice.errorFallback'), code: err.code }), 'warning');
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

async function startPeer(ready) {
  if (state.pc) return;
  state.joined = true;
  document.body.dataset.signaling = 'live';
  const r = readyOf(ready);
  const expires = new Date(r.expires);
  const { id, name, site } = r.device;
  state.device = r.device;
  document.title = r.title;
  state.toolbar.setDevice(name, site, id);
  state.bar.device = r.bar;
  if (!Number.isNaN(expires.getTime())) {
    state.toolbar.setExpires(expires);
    state.bar.expires = expires.getTime();
    state.relayReady.then(() => postRelay({ type: MSG.session, expires: expires.getTime() })).catch(() => {});
  }
  publishBar();
  const pc = new RTCPeerConnection({ iceServers: r.iceServers });
  state.pc = pc;
  state.iceServers = r.iceServers;
  state.tunnel = new Tunnel(pc);
  state.tunnel.prime(() => step('channel-open'));
  wakeReadyWaiters();
  pc.addEventListener('iceconnectionstatechange', () => {
    if (pc.iceConnectionState === 'connected') step('ice-connected');
  });
  pc.onicecandidate = (e) => state.signaling.send('candidate', candidateData(e.candidate));
  state.recovery = new Recovery({
    restart: (attempt) => restartIce(pc, attempt),
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
        step('connected');
        clearTimeout(state.connectTimer);
        markConnected();
        setStatus('');
        pollStats();
        noteRelay(pc);
        break;
      case 'failed':
        // After the first connection, recovery restarts ICE instead.
        if (!state.recovery.established) endSession('error', t('fail.connection'), true);
        break;
      default:
    }
  };
  state.connectTimer = setTimeout(() => {
    if (pc.connectionState !== 'connected') endSession('error', t('fail.noPath'), true);
  }, CONNECT_TIMEOUT);
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  state.signaling.send('offer', { type: 'offer', sdp: pc.localDescription.sdp });
  step('offer-sent');
}

/**
 * One ICE restart: new ICE credentials in a new offer, on the same peer
 * connection (same DTLS certificate, so the agent renegotiates rather than
 * replacing it). An offer still unanswered from the previous attempt is sent
 * again as it is (it may have been lost while the agent reconnected to
 * signaling); its SDP carries the candidates gathered so far.
 */
async function restartIce(pc, attempt = 1) {
  if (state.ended || pc !== state.pc || pc.connectionState === 'closed') return;
  const lost = state.pathRelay;
  if (lost && attempt <= MAX_REFRESHES && pc.signalingState !== 'have-local-offer') {
    // Through a relay, the relay may be what broke: restart through the
    // session's relays without it.
    const relays = await refreshRelays(lost);
    if (state.ended || pc !== state.pc || pc.connectionState === 'connected') return;
    state.toolbar.notify(relayLostText(lost, relays, attempt), 'warning');
  }
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

/** Records which relay the new path goes through (null when none). */
async function noteRelay(pc) {
  try {
    const report = await pc.getStats();
    if (pc === state.pc && pc.connectionState === 'connected') state.pathRelay = relayOf(report, state.iceServers);
  } catch {
    // without stats, a lost relay restarts ICE with the servers it has
  }
}

/**
 * Asks signaling for the session's relays without lost and waits, at most
 * REFRESH_WAIT, for them; an ice.servers that came moments ago (the agent
 * asked first) is used as it is. Returns the relays (host:port) now set.
 */
function refreshRelays(lost) {
  if (Date.now() - state.refreshedAt < REFRESH_FRESH) return Promise.resolve(iceServersOf({ iceServers: state.iceServers })?.relays || []);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      state.refreshWaiter = null;
      resolve([]);
    }, REFRESH_WAIT);
    state.refreshWaiter = (relays) => {
      clearTimeout(timer);
      state.refreshWaiter = null;
      resolve(relays);
    };
    state.signaling.send('ice.refresh', { failed: lost.filter((u) => /^turns?:/.test(u)).slice(0, MAX_FAILED_RELAYS) });
  });
}

/** Takes signaling's ice.servers: the next ICE restart gathers with them. */
function applyICEServers(d) {
  const up = iceServersOf(d);
  if (!up || !state.pc) {
    console.warn('porthole: ice.servers refused');
    return;
  }
  try {
    state.pc.setConfiguration({ ...state.pc.getConfiguration(), iceServers: up.iceServers });
  } catch (err) {
    console.warn('porthole: the new ICE servers were refused:', err.message);
    return;
  }
  state.iceServers = up.iceServers;
  state.refreshedAt = Date.now();
  state.refreshWaiter?.(up.relays);
}

function pollStats() {
  if (state.statsTimer) return;
  const poll = async () => {
    if (!state.pc || state.ended) return;
    try {
      const report = await state.pc.getStats();
      const p = pathFromStats(report);
      // The selected pair may change after 'connected' (a relayed pair
      // first, a direct one once it validates): keep the relay current.
      if (state.pc.connectionState === 'connected') state.pathRelay = relayOf(report, state.iceServers);
      state.toolbar.setPath(p, explainPath(report, state.sitePath));
      const label = pathLabel(p);
      if (label !== state.bar.path) {
        state.bar.path = label;
        state.bar.kind = p ? (p.relay ? 'relay' : 'direct') : '';
        publishBar();
      }
    } catch {
      // stats are decoration
    }
  };
  poll();
  state.statsTimer = setInterval(poll, STATS_EVERY);
}

/**
 * The relay frame in this window (device origin): the shell's HTML holds
 * it, so it loads, and registers the worker, while this script is still
 * on its way; it relays nothing before joinRelay hands it this window's
 * port. A page without it gets one now.
 */
function startRelay() {
  if (state.relay || state.ended) return;
  let f = /** @type {HTMLIFrameElement | null} */ (document.getElementById('relay'));
  if (!f) {
    f = document.createElement('iframe');
    f.className = 'relay';
    f.hidden = true;
    f.title = t('title.relay');
    f.src = DEVICE_ORIGIN + RELAY_PATH;
    document.body.append(f);
  }
  const frame = f;
  // A message to the relay is lost until it listens (before that it
  // reaches the frame's initial document, or a realm with no listener
  // yet): the relay says when it does (MSG.relayUp), and answers this
  // window's asking, for the case it said so before this script listened.
  // Its load event means the same.
  state.relayLoaded = new Promise((resolve) => {
    state.relayUp = () => {
      step('relay-up');
      state.relayUp = () => {};
      resolve();
    };
    frame.addEventListener('load', () => state.relayUp(), { once: true });
  });
  state.relay = frame;
  step('relay-frame');
  postRelay({ type: MSG.relayUp });
  setTimeout(() => state.relayReadyResolve?.reject(coded('unavailable', t('fail.worker'))), RELAY_TIMEOUT);
}

/**
 * This window holds the session (session.ready): the relay gets this
 * window's port for the worker, and only then announces itself to it; and
 * the relay ticket buys the device cookie of the server fallback.
 */
function joinRelay(ticket) {
  if (state.ended || !state.relay || state.portTaken) return;
  state.portTaken = state.relayLoaded.then(() => offerPort());
  redeemTicket(ticket).then(() => state.ticketDone());
}

/**
 * Redeems the relay ticket of session.ready on the device origin, which
 * answers with the device cookie (HttpOnly, SameSite=Strict, of the device
 * origin; signaling/server/device.go). This window asks for it itself, as
 * an opaque request: the ticket never enters a realm of the device origin,
 * which the device's page could script. A refused ticket only means the
 * server fallback refuses this browser; the tunnel does not need it.
 */
async function redeemTicket(ticket) {
  if (!ticket) return;
  try {
    await fetch(`${DEVICE_ORIGIN}${RELAY_PATH}?t=${encodeURIComponent(ticket)}`, {
      mode: 'no-cors',
      credentials: 'include',
      cache: 'no-store',
      referrerPolicy: 'no-referrer',
    });
    step('ticket-redeemed');
  } catch (err) {
    console.warn('porthole: the relay ticket was not redeemed:', err.message);
  }
}

/** A window that does not hold the session keeps no relay. */
function dropRelay() {
  state.relay?.remove();
  state.relay = null;
}

function postRelay(m) {
  state.relay?.contentWindow?.postMessage(m, DEVICE_ORIGIN);
}

/**
 * Messages from the device origin: tunnel requests from the relay, display
 * hints from the page shim in the device frame. Nothing else, from nobody
 * else.
 */
function onMessage(e) {
  const from = messageSource(e, { deviceOrigin: DEVICE_ORIGIN, relay: state.relay?.contentWindow, frame: state.frame?.contentWindow });
  if (from === 'relay') {
    const m = e.data;
    if (m?.type === MSG.relayReady) {
      const ready = state.relayReadyResolve;
      state.relayReadyResolve = null;
      if (!ready) return;
      const { error } = relayReadyOf(m);
      if (error) ready.reject(error);
      else {
        performance.mark('porthole.relay-ready');
        (state.portTaken || Promise.resolve()).then(() => {
          step('port-taken');
          ready.resolve();
        });
      }
      return;
    }
    if (m?.type === MSG.wiped) {
      state.wiped?.();
      return;
    }
    if (m?.type === MSG.relayUp) {
      state.relayUp();
      return;
    }
    onRequest(m, e.ports);
    return;
  }
  if (from === 'frame') onHint(pageHint(e.data));
}

/** A tunnel request or a page WebSocket, from the relay or on the worker's port. */
function onRequest(m, ports) {
  const r = requestOf(m, ports);
  if (r?.kind === 'fetch') serve(r.req);
  else if (r?.kind === 'ws') serveWebSocket(r.req);
  else if (r?.kind === 'refuse') refuseWebSocket(r.port);
}

/**
 * Hands the worker a port of this window's, through the relay, before the
 * device frame exists (protocol.js MSG.port): the worker then posts its
 * requests straight here. Resolves when the worker has it, or after
 * PORT_WAIT (a worker that does not take it goes through the relay).
 */
function offerPort() {
  if (state.workerPort || !state.relay) return Promise.resolve();
  const { port1, port2 } = new MessageChannel();
  state.workerPort = port1;
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, PORT_WAIT);
    // After the end, serve() still answers, with session_ended.
    port1.onmessage = (e) => {
      if (e.data?.type === MSG.portAck) {
        clearTimeout(timer);
        resolve();
        return;
      }
      // The worker's requests on this port carry an id instead of a port
      // of their own (sw.js onShellReply).
      const id = e.data?.id;
      if (Number.isSafeInteger(id) && id > 0 && !e.ports.length) {
        if (e.data.type === 'abort') state.muxed.get(id)?.abort();
        else if (e.data.type === MSG.fetch) onRequest(e.data, [muxPort(port1, id, state.muxed)]);
        return;
      }
      onRequest(e.data, e.ports);
    };
    state.relay.contentWindow.postMessage({ type: MSG.port }, DEVICE_ORIGIN, [port2]);
  });
}

/** What the page shim says about the frame's page: toolbar text only. */
function onHint(h) {
  if (!h || state.ended) return;
  switch (h.kind) {
    case 'location':
      if (!h.path) return;
      // Each page of the frame says where it is first: the previous page's
      // notices are moot.
      if (state.pageNotice) {
        state.pageNotice = false;
        state.toolbar.notify('');
        state.toolbar.attention(false);
        document.querySelector('.stage .hidden-page')?.remove();
      }
      state.location = h.path;
      state.toolbar.setLocation(h.path);
      // Reloading the window brings back the page the technician was on.
      history.replaceState(null, '', h.path);
      return;
    case 'framebust':
      state.pageNotice = true;
      state.toolbar.notify(t('notice.framebust'), 'warning');
      state.toolbar.attention(true);
      // A page that hid itself leaves the frame blank: say why over it.
      if (h.reason === 'hidden') showHiddenPage();
      return;
    case 'websocket':
      state.pageNotice = true;
      state.toolbar.notify(t('notice.websocket'), 'warning');
      return;
    default:
  }
}

/** Over a blank frame: the page refuses frames; here is its own tab. */
function showHiddenPage() {
  const stage = document.getElementById('stage');
  if (!state.frame || stage.querySelector('.hidden-page')) return;
  const panel = document.createElement('section');
  panel.className = 'hidden-page';
  const h = document.createElement('h2');
  h.textContent = t('notice.framebust');
  const p = document.createElement('p');
  p.textContent = t('hidden.text');
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'primary';
  b.textContent = t('toolbar.popout');
  b.addEventListener('click', () => popOut());
  panel.append(h, p, b);
  stage.append(panel);
}

function showFrame(path) {
  if (state.ended) return;
  const frame = document.createElement('iframe');
  frame.className = 'device';
  frame.setAttribute('sandbox', SANDBOX);
  frame.title = t('frame.title');
  frame.addEventListener('load', () => {
    // A new page in the frame: a new chance for the credentials dialog.
    auth.declined = false;
  });
  frame.src = DEVICE_ORIGIN + path;
  step('device-frame');
  state.location = path;
  state.toolbar.setLocation(path);
  document.getElementById('stage').replaceChildren(frame);
  state.frame = frame;
  setStatus('');
}

/**
 * "Open in its own tab": the device page the frame shows, as a top-level
 * tab of the device origin. It is controlled by the same worker, so its
 * requests come through the same relay to this window's peer connection;
 * there self === top holds, which frame-busting pages insist on. noopener:
 * the tab gets no reference to this window.
 */
function popOut() {
  if (state.ended) return;
  window.open(DEVICE_ORIGIN + (state.location || '/'), '_blank', 'noopener');
  state.toolbar.attention(false);
  document.querySelector('.stage .hidden-page')?.remove();
  state.toolbar.notify(t('notice.poppedOut'), 'info');
}

/**
 * A service worker cannot carry WebSockets, so the page shim
 * (page/websocket.js) gives the device's page a WebSocket whose
 * MessagePort its worker and the relay hand to this window; the socket runs
 * on a tunnel channel (wsport.js) with the device origin as the client's
 * origin, like the page's requests. The page could open the same socket
 * itself: it reaches a path of the session's device, nothing else. The
 * cookies the device sets or deletes on the way go back over the port, for
 * the shim to mirror in the page's own store (the shell cannot reach it).
 */
async function serveWebSocket(req) {
  // As a request: before session.ready it waits for the tunnel; after the
  // end it is refused.
  if (!state.ended && !state.tunnel) await tunnelReady().catch(() => {});
  if (state.ended || !state.tunnel) return refuseWebSocket(req.port);
  serveWebSocketPort(state.tunnel, req, req.port, {
    clientOrigin: DEVICE_ORIGIN,
    onOpened: (o) => {
      if (o.tls) noteLegacyTLS(o.tls);
    },
  });
}

/** Fails a page WebSocket as a refused connection (1006), carrying nothing. */
function refuseWebSocket(port) {
  try {
    port.postMessage({ type: 'close', code: 1006, reason: '', wasClean: false });
  } catch {
    // the page is gone
  }
  port.close();
}

/** The bars of popped-out tabs (bar.js) ask for the state and may ask to end. */
function openBarChannel() {
  if (typeof BroadcastChannel === 'undefined') return;
  state.barChannel = new BroadcastChannel(BAR_CHANNEL);
  state.barChannel.onmessage = (e) => {
    const ask = barRequest(e.data, state.ended);
    if (ask === 'publish') publishBar();
    else if (ask === 'end') endSession('client', '', true);
  };
}

function publishBar() {
  state.barChannel?.postMessage({ type: 'state', ...state.bar });
}

/** Serves one tunnel request from the relay; answers on its port. */
async function serve(m) {
  const { port } = m;
  const recv = performance.timeOrigin + performance.now();
  if (!state.served) {
    state.served = true;
    step('first-request');
  }
  if (state.ended || !state.tunnel) {
    // Requests before session.ready wait for the tunnel; after the end they
    // are refused, so the device's page cannot outlive the session.
    if (state.ended) return port.postMessage(endedReply(state.endReason));
    await tunnelReady();
    if (state.ended) return port.postMessage(endedReply(state.endReason));
  }
  const ac = new AbortController();
  port.onmessage = (e) => {
    if (e.data?.type === 'abort') ac.abort();
  };
  try {
    let body = m.body;
    // A body the device's login may refuse is kept for the repeat (replay.js).
    const kept = body && m.method !== 'GET' && m.method !== 'HEAD' ? await keepBody(body) : null;
    if (kept) body = kept.fresh();
    const req = {
      method: m.method,
      target: m.target,
      headers: m.headers,
      cookie: m.cookie,
      origin: m.origin,
      referrer: m.referrer,
      clientOrigin: DEVICE_ORIGIN,
      body,
      signal: ac.signal,
      priority: priorityOf(m.dest),
    };
    const first = await state.tunnel.fetch({ ...req, credentials: takeCredentials() });
    const { head, body: resBody } = await authenticate(req, first.head, first.body, kept);
    if (head.tls) noteLegacyTLS(head.tls);
    // When the request arrived and its head came back (sw.js hopTiming).
    const timing = { relayed: m.relayed, recv, head: performance.timeOrigin + performance.now() };
    // A subresource's small body goes with its head (smallbody.js); a
    // document's streams, so that the page renders as it arrives.
    let out = resBody;
    let bytes = null;
    if (resBody && !m.navigate && m.method === 'GET' && collectable(head.header)) {
      ({ bytes = null, stream: out = null } = await collectSmall(resBody));
      timing.body = performance.timeOrigin + performance.now();
    }
    const reply = { type: 'response', status: head.status, header: head.header, cookies: head.cookies, deletedCookies: head.deletedCookies, body: out, bytes, timing };
    port.postMessage(reply, bytes ? [bytes] : out ? [out] : []);
  } catch (err) {
    port.postMessage(errorReply(err));
  }
}

/** Says once in the toolbar that the device is reached only with old TLS. */
function noteLegacyTLS(tls) {
  if (state.legacyTLSNoted || !state.toolbar) return;
  state.legacyTLSNoted = true;
  state.toolbar.notify(tls.note || t('notice.legacyTLS', { version: tls.version }), 'warning');
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
 * request with them, a POST or PUT with its body when the shell kept it
 * (kept: replay.js, up to 1 MiB); a larger body is gone, so its
 * credentials go with the next request and the toolbar says to send it
 * again. Returns the response to give the page: the device's 401 as it is
 * if the technician cancels.
 */
async function authenticate(req, head, body, kept) {
  let challenge = head.status === 401 ? authChallenge(head.header) : null;
  const replayable = ((req.method === 'GET' || req.method === 'HEAD') && !req.body) || !!kept?.replayable;
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
      state.toolbar.notify(t('notice.tooLarge', { mib: REPLAY_LIMIT >> 20 }), 'warning');
      break;
    }
    body?.cancel().catch(() => {});
    ({ head, body } = await state.tunnel.fetch({ ...req, body: kept ? kept.fresh() : req.body, credentials: creds }));
    challenge = head.status === 401 ? authChallenge(head.header) : null;
  }
  return { head, body };
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

function fail(err) {
  if (state.ended) return;
  if (failAction(err, state.joined) === 'refuse') return refused(err);
  endSession('error', err.detail || err.message || String(err), true, err.code);
}

/**
 * Ends the session once: tells signaling when we are the ones ending it,
 * closes every channel and the peer connection, has the worker send every
 * device window to the end page and unregister (which wipes the device
 * origin), wipes this origin, and shows why.
 */
function endSession(reason, message, tellSignaling, code) {
  if (state.ended) return;
  state.ended = true;
  state.endReason = reason;
  if (tellSignaling && state.signaling) {
    state.signaling.send('session.end', endNotice(reason, message));
  }
  clearInterval(state.statsTimer);
  clearTimeout(state.connectTimer);
  clearTimeout(state.noticeTimer);
  state.recovery?.stop();
  state.tunnel?.close();
  state.pc?.close();
  // Let session.end leave before the socket closes.
  setTimeout(() => state.signaling?.close(), 200);
  forgetToken();
  wakeReadyWaiters();
  state.toolbar.stop();
  state.toolbar.notify('');
  state.bar.ended = reason;
  publishBar();
  showEnded(t('ended.title'), endText(reason, message), code || reason);
  wipe(reason);
}

/**
 * The browser keeps nothing of the session: the worker (through the relay)
 * sends the device's windows to /__t/ended, which clears the device
 * origin's storage and cache, deletes its cookies and unregisters; then
 * this origin's own storage goes (/__t/wipe, which also expires the bind
 * cookie). Only a window that held the session wipes: a refused one must
 * not touch the holder's.
 */
async function wipe(reason) {
  if (!state.joined) return;
  if (state.relay) {
    const done = new Promise((resolve) => {
      state.wiped = resolve;
      setTimeout(resolve, WIPE_TIMEOUT);
    });
    postRelay({ type: MSG.ended, reason });
    await done;
    state.relay.remove();
    state.relay = null;
  }
  try {
    await fetch(WIPE_PATH, { credentials: 'same-origin', cache: 'no-store' });
  } catch {
    // the server is gone; the bind cookie expires with the session anyway
  }
  document.body.dataset.wiped = '1';
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
  // The way on: the session's job in the app, which opens a new session on
  // the same device with one click (never opened by a link alone).
  const again = againHref(state.app, sessionID(), code);
  if (again) {
    const a = document.createElement('a');
    a.className = 'again';
    a.href = again;
    a.textContent = state.device.name ? t('ended.againOn', { device: state.device.name }) : t('ended.again');
    panel.append(a);
  }
  if (code) {
    // The code is for support, behind "Details" as in the app.
    const d = document.createElement('details');
    d.className = 'code';
    const sum = document.createElement('summary');
    sum.textContent = t('ended.details');
    const c = document.createElement('p');
    c.append(t('ended.code'));
    const k = document.createElement('code');
    k.textContent = code;
    c.append(k);
    d.append(sum, c);
    panel.append(d);
  }
  document.getElementById('stage').replaceChildren(panel);
  state.frame = null;
}

main().catch((err) => fail(err));
