// The SSH terminal of the session window: xterm.js (npm @xterm/xterm,
// copied unchanged into ui/vendor/xterm/ by `make web`) drawing in this
// window, connected to a terminal exchange (proto/ssh.go) on a data
// channel of the session. The agent at the site is the SSH client: this
// window sends the login the technician types here once, in FrameSSHOpen,
// then keystrokes and window changes; the agent sends the pty's output.
//
// The login form's values leave this window only inside that one frame and
// are dropped from the form at once; nothing here logs or stores them.

import { TunnelSocket } from './tcpsocket.js';
import { t } from './messages.js';
import { adoptXtermStyles } from './xtermstyles.js';
import { FrameType, TunnelError, encodeJSONFrame, decodeAbort, parseFrame } from './frames.js';

const XTERM_URL = '/__t/ui/vendor/xterm/xterm.mjs';
const XTERM_CSS = '/__t/ui/vendor/xterm/xterm.css';
const FIT_URL = '/__t/ui/vendor/xterm/addon-fit.mjs';

/**
 * A TunnelSocket that opens a terminal exchange instead of a TCP one.
 * opened resolves with {hostKey, firstUse} once the shell runs.
 */
export class SSHSocket extends TunnelSocket {
  /** @param {RTCPeerConnection} pc @param {object} login proto.SSHOpen */
  constructor(pc, login) {
    super(pc, login.port);
    let open = encodeJSONFrame(FrameType.SSHOpen, login);
    this.hostKey = null;
    // The channel opens later than this constructor returns: replace the
    // TCP open with the terminal's, and forget the login once sent.
    this.dc.onopen = () => {
      this.dc.send(open);
      open.fill(0);
      open = null;
    };
  }

  onFrame(data) {
    if (this.readyState === 'connecting' && data instanceof ArrayBuffer) {
      let f;
      try {
        f = parseFrame(data);
      } catch (err) {
        return this.fail(err);
      }
      if (f.type === FrameType.SSHOpened) {
        try {
          this.hostKey = JSON.parse(new TextDecoder().decode(f.payload));
        } catch {
          return this.fail(new TunnelError('bad_message', 'malformed ssh-opened'));
        }
        this.readyState = 'open';
        this.onopen?.(new Event('open'));
        this.flush();
        return;
      }
      if (f.type === FrameType.Abort) return this.fail(decodeAbort(f.payload));
      if (f.type === FrameType.TCPOpened) return this.fail(new TunnelError('bad_message', 'tcp-opened in a terminal exchange'));
    }
    return super.onFrame(data);
  }

  /** Tells the device the terminal's new size. */
  resize(cols, rows) {
    if (this.readyState !== 'open' || this.dc.readyState !== 'open') return;
    this.dc.send(encodeJSONFrame(FrameType.SSHResize, { cols, rows }));
  }
}

/**
 * Shows a login form, then the device's terminal, in stage.
 * @param {{pc: RTCPeerConnection, stage: HTMLElement, port: number,
 *   notify: (text: string, level?: string) => void}} opt
 */
export async function showTerminal({ pc, stage, port, notify }) {
  const [{ Terminal }, { FitAddon }] = await Promise.all([import(XTERM_URL), import(FIT_URL)]);
  if (!document.querySelector(`link[href="${XTERM_CSS}"]`)) {
    const css = document.createElement('link');
    css.rel = 'stylesheet';
    css.href = XTERM_CSS;
    document.head.append(css);
  }
  const panel = document.createElement('section');
  panel.className = 'terminal';
  const view = document.createElement('div');
  view.className = 'terminal-view';
  view.id = 'terminal-view';
  panel.append(view);
  stage.replaceChildren(panel);
  document.body.dataset.terminal = 'login';

  const state = { socket: null, term: null };
  const login = await askLogin(panel);
  const term = new Terminal({ cursorBlink: true, fontSize: 14, scrollback: 5000 });
  // The fit addon sizes the terminal from xterm.js's own cell size (a
  // probe of ours measured another font and filled about two thirds).
  const fitter = new FitAddon();
  term.loadAddon(fitter);
  adoptXtermStyles(view);
  term.open(view);
  state.term = term;
  fitter.fit();
  const { cols, rows } = term;
  document.body.dataset.terminal = 'connecting';
  term.write(`${t('terminal.connecting', { port, user: login.user })}\r\n`);
  const socket = new SSHSocket(pc, { port, ...login, cols, rows });
  state.socket = socket;
  socket.onopen = () => {
    document.body.dataset.terminal = 'connected';
    const hk = socket.hostKey || {};
    document.body.dataset.hostKey = hk.hostKey || '';
    if (hk.firstUse) notify(t('terminal.pinned', { key: hk.hostKey }), 'info');
    term.focus();
  };
  socket.onmessage = (e) => term.write(new Uint8Array(e.data));
  socket.onclose = () => {
    const err = socket.error;
    document.body.dataset.terminal = err ? 'refused' : 'closed';
    if (err) {
      const text = err.detail || err.message;
      term.write(`\r\n\x1b[31m${text}\x1b[0m\r\n`);
      view.dataset.error = text;
      notify(text, 'warning');
    } else {
      term.write(`\r\n${t('terminal.ended')}\r\n`);
    }
  };
  term.onData((d) => socket.send(new TextEncoder().encode(d)));
  term.onBinary((d) => socket.send(Uint8Array.from(d, (c) => c.charCodeAt(0) & 0xff)));
  term.onResize(({ cols, rows }) => socket.resize(cols, rows));
  addEventListener('resize', () => fitter.fit());
  return state;
}


/** The device's SSH login, typed here: user and a password or a private key. */
function askLogin(panel) {
  return new Promise((resolve) => {
    const form = document.createElement('form');
    form.className = 'terminal-login';
    const field = (id, text, el) => {
      const label = document.createElement('label');
      label.textContent = text;
      el.id = id;
      el.autocomplete = 'off';
      label.append(el);
      form.append(label);
      return el;
    };
    const user = field('terminal-user', t('terminal.user'), document.createElement('input'));
    const pw = field('terminal-password', t('terminal.password'), document.createElement('input'));
    pw.type = 'password';
    const key = field('terminal-key', t('terminal.key'), document.createElement('textarea'));
    key.rows = 3;
    const ok = document.createElement('button');
    ok.type = 'submit';
    ok.id = 'terminal-connect';
    ok.textContent = t('terminal.connect');
    form.append(ok);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      if (!user.value || (!pw.value && !key.value)) return;
      const login = { user: user.value };
      if (key.value.trim()) login.privateKey = key.value;
      else login.password = pw.value;
      pw.value = '';
      key.value = '';
      form.remove();
      resolve(login);
    });
    panel.prepend(form);
    user.focus();
  });
}

