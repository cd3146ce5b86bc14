// The bar of a popped-out device tab, on the session window's SHELL origin,
// framed by the device page's tab (page/bar.js). It holds nothing secret:
// the session window broadcasts the toolbar's state to it on a
// BroadcastChannel of this origin (shell.js publishBar), and it may ask the
// window to end the session. Only textContent is set: the device name
// comes from the agent.

import { formatRemaining, timerLevel } from './toolbar.js';
import { t } from './messages.js';

const CHANNEL = 'porthole.bar';
const $ = (id) => document.getElementById(id);
const NO_WINDOW = 2_000; // no answer in this long: the session window is closed

let expires = 0;
let ended = false;
let confirming = false;
let tick = null;
const ch = new BroadcastChannel(CHANNEL);
const lost = setTimeout(() => {
  $('state').textContent = t('bar.lost');
}, NO_WINDOW);

function render() {
  if (ended || !expires) return;
  const left = expires - Date.now();
  $('timer').textContent = formatRemaining(left);
  $('timer').dataset.level = timerLevel(left);
}

ch.onmessage = (e) => {
  const m = e.data;
  if (!m || m.type !== 'state') return;
  clearTimeout(lost);
  $('device').textContent = typeof m.device === 'string' ? m.device : '';
  $('path').textContent = typeof m.path === 'string' ? m.path : '';
  $('path').dataset.kind = m.kind === 'relay' || m.kind === 'direct' ? m.kind : '';
  if (typeof m.expires === 'number' && m.expires > 0) expires = m.expires;
  if (m.ended) {
    ended = true;
    clearInterval(tick);
    $('timer').textContent = '';
    $('state').textContent = t('bar.ended');
    $('end').hidden = true;
    return;
  }
  $('state').textContent = '';
  $('end').hidden = false;
  render();
  tick ||= setInterval(render, 1000);
};

// Two clicks to end: the bar sits on a page the device controls, which
// could trick a single click onto it.
$('end').addEventListener('click', () => {
  if (ended) return;
  if (!confirming) {
    confirming = true;
    $('end').textContent = t('bar.confirm');
    setTimeout(() => {
      confirming = false;
      $('end').textContent = t('toolbar.end');
    }, 3000);
    return;
  }
  ch.postMessage({ type: 'end' });
});

ch.postMessage({ type: 'hello' });
