// The VNC viewer of the session window: noVNC (npm @novnc/novnc, copied
// unchanged into ui/vendor/novnc/ by `make web`) drawing on a canvas in
// this window, connected straight to a TCP exchange on a data channel of
// the session (tcpsocket.js), to the device's declared VNC port. No device
// content runs here: the framebuffer is pixels, and noVNC parses the RFB
// stream in this window's origin, which holds the session's secrets but
// loads nothing from the device.
//
// View-only is enforced twice in this window: noVNC sends no input when
// viewOnly is set, and the socket's filter drops every KeyEvent,
// PointerEvent and ClientCutText whatever noVNC does (the device origin
// cannot reach this window, so the page cannot lift either). The agent
// forwards the bytes as they come.

import { TunnelSocket, viewOnlyFilter } from './tcpsocket.js';
import { t } from './messages.js';

const RFB_URL = '/__t/ui/vendor/novnc/core/rfb.js';

/**
 * Shows the device's screen in stage.
 * @param {{pc: RTCPeerConnection, stage: HTMLElement, port: number, viewOnly: boolean,
 *   notify: (text: string, level?: string) => void}} opt
 * @returns {Promise<{socket: TunnelSocket, rfb: any}>}
 */
export async function showScreen({ pc, stage, port, viewOnly, notify }) {
  const { default: RFB } = await import(RFB_URL);
  const panel = document.createElement('section');
  panel.className = 'screen';
  const controls = document.createElement('div');
  controls.className = 'screen-controls';
  const view = document.createElement('div');
  view.className = 'screen-view';
  view.id = 'screen-view';

  const viewOnlyBox = checkbox('screen-view-only', t('screen.viewOnly'), viewOnly);
  const scaleBox = checkbox('screen-scale', t('screen.scale'), true);
  const clip = document.createElement('textarea');
  clip.id = 'screen-clipboard';
  clip.rows = 1;
  clip.setAttribute('aria-label', t('screen.clipboard'));
  clip.placeholder = t('screen.clipboard');
  const send = document.createElement('button');
  send.type = 'button';
  send.id = 'screen-clipboard-send';
  send.textContent = t('screen.send');
  controls.append(viewOnlyBox.label, scaleBox.label, clip, send);
  panel.append(controls, view);
  stage.replaceChildren(panel);

  let rfb = null;
  const state = { viewOnly };
  // Opened view-only, the agent enforces it for the whole stream and the
  // box stays checked; opened interactive, the box makes this side drop
  // input while it is checked.
  const socket = new TunnelSocket(pc, port, {
    viewOnly,
    filter: viewOnly ? null : (bytes) => (state.viewOnly ? viewOnlyFilter(() => rfb?._rfbConnectionState === 'connected')(bytes) : bytes),
  });
  viewOnlyBox.input.disabled = viewOnly;
  rfb = new RFB(view, socket, { shared: true });
  rfb.viewOnly = viewOnly;
  rfb.scaleViewport = true;
  rfb.background = '#202020';
  document.body.dataset.screen = 'connecting';

  viewOnlyBox.input.addEventListener('change', () => {
    state.viewOnly = viewOnlyBox.input.checked;
    rfb.viewOnly = state.viewOnly;
    send.disabled = state.viewOnly;
    document.body.dataset.viewOnly = state.viewOnly ? '1' : '';
  });
  send.disabled = viewOnly;
  document.body.dataset.viewOnly = viewOnly ? '1' : '';
  scaleBox.input.addEventListener('change', () => {
    rfb.scaleViewport = scaleBox.input.checked;
  });
  send.addEventListener('click', () => {
    if (!state.viewOnly) rfb.clipboardPasteFrom(clip.value);
  });
  rfb.addEventListener('clipboard', (e) => {
    clip.value = e.detail.text;
  });
  rfb.addEventListener('credentialsrequired', () => askPassword(panel, (password) => rfb.sendCredentials({ password })));
  rfb.addEventListener('connect', () => {
    document.body.dataset.screen = 'connected';
    panel.querySelector('.screen-password')?.remove();
    if (!state.viewOnly) rfb.focus();
  });
  rfb.addEventListener('securityfailure', (e) => {
    notify(e.detail?.reason ? t('screen.refusedWhy', { reason: e.detail.reason }) : t('screen.refused'), 'warning');
  });
  rfb.addEventListener('disconnect', (e) => {
    document.body.dataset.screen = 'disconnected';
    if (!e.detail?.clean) notify(t('screen.closed'), 'warning');
  });
  return { socket, rfb };
}

function checkbox(id, text, checked) {
  const label = document.createElement('label');
  const input = document.createElement('input');
  input.type = 'checkbox';
  input.id = id;
  input.checked = checked;
  label.append(input, ` ${text}`);
  return { label, input };
}

/** The device's VNC password, typed here and given to noVNC only. */
function askPassword(panel, done) {
  if (panel.querySelector('.screen-password')) return;
  const form = document.createElement('form');
  form.className = 'screen-password';
  const label = document.createElement('label');
  label.textContent = t('screen.password');
  const input = document.createElement('input');
  input.type = 'password';
  input.id = 'screen-password';
  input.autocomplete = 'off';
  label.append(input);
  const ok = document.createElement('button');
  ok.type = 'submit';
  ok.textContent = t('screen.connect');
  form.append(label, ok);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const pw = input.value;
    input.value = '';
    form.remove();
    done(pw);
  });
  panel.prepend(form);
  input.focus();
}
