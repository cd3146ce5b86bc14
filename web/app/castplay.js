// The Jobs tab's player of a terminal recording (asciicast v2, as the agent
// records every browser terminal: output and window changes, never
// keystrokes): xterm.js (npm @xterm/xterm, the copy `make web` puts in
// ui/vendor/xterm/, served on this origin too) replays it with its
// recorded timing, idle gaps capped as asciinema does, with play/pause and
// speed. Every value reaches the page as text (xterm.js draws it).

import { adoptXtermStyles } from '../session/xtermstyles.js';

const XTERM_URL = '/ui/vendor/xterm/xterm.mjs';
const XTERM_CSS = '/ui/vendor/xterm/xterm.css';

/** The longest pause the player keeps, in seconds (asciinema's idle_time_limit). */
export const IDLE_CAP = 2;

/**
 * parseCast(text) → {header, events}: the header object and the events as
 * [time, code, data], their times with idle gaps capped at cap seconds.
 * Lines that are not events are skipped; a text without an asciicast v2
 * header throws.
 */
export function parseCast(text, cap = IDLE_CAP) {
  const lines = String(text).split('\n');
  let header;
  try {
    header = JSON.parse(lines[0]);
  } catch {
    throw new Error('not an asciicast recording');
  }
  if (!header || header.version !== 2) throw new Error('not an asciicast v2 recording');
  /** @type {Array<[number, string, string]>} */
  const events = [];
  let last = 0;
  let shifted = 0; // seconds of idle cut so far
  for (const line of lines.slice(1)) {
    if (!line) continue;
    let ev;
    try {
      ev = JSON.parse(line);
    } catch {
      continue;
    }
    if (!Array.isArray(ev) || ev.length < 3 || typeof ev[0] !== 'number' || typeof ev[2] !== 'string') continue;
    const tm = Math.max(ev[0], last);
    shifted += Math.max(0, tm - last - cap);
    last = tm;
    events.push([tm - shifted, String(ev[1]), ev[2]]);
  }
  return { header, events };
}

/**
 * fontFor(width, cols) → the font size (px) at which cols monospace columns
 * fit width (a cell is about 0.6 em wide), between 7 and 13: a recording
 * from a full-width terminal fits the Jobs panel instead of running off it.
 */
export function fontFor(width, cols) {
  if (!(width > 0) || !(cols > 0)) return 13;
  return Math.max(7, Math.min(13, Math.floor(width / (cols * 0.62))));
}

/** parseSize("100x30") → {cols: 100, rows: 30}, or null. */
export function parseSize(s) {
  const m = /^(\d{1,4})x(\d{1,4})$/.exec(s);
  return m ? { cols: Math.max(1, Number(m[1])), rows: Math.max(1, Number(m[2])) } : null;
}

/**
 * showCast(box, text, words) replays a recording in box: a terminal, a
 * play/pause button, a speed choice and the time. box.dataset.replay says
 * where it is: "playing", "paused" or "done". words(key) words the labels.
 * It returns a function that stops the player.
 */
export async function showCast(box, text, words) {
  const { header, events } = parseCast(text);
  const { Terminal } = await import(XTERM_URL);
  if (!document.querySelector(`link[href="${XTERM_CSS}"]`)) {
    const css = document.createElement('link');
    css.rel = 'stylesheet';
    css.href = XTERM_CSS;
    document.head.append(css);
  }
  const screen = document.createElement('div');
  screen.className = 'cast-screen';
  const play = document.createElement('button');
  play.type = 'button';
  play.className = 'cast-play secondary';
  const speed = document.createElement('select');
  speed.className = 'cast-speed';
  speed.setAttribute('aria-label', words('jobs.replay.speed'));
  for (const v of ['0.5', '1', '2', '4', '16']) {
    const o = document.createElement('option');
    o.value = v;
    o.textContent = `${v}×`;
    o.selected = v === '1';
    speed.append(o);
  }
  const time = document.createElement('span');
  time.className = 'cast-time muted';
  const bar = document.createElement('div');
  bar.className = 'ph-actions cast-bar';
  bar.append(play, speed, time);
  box.replaceChildren(bar, screen);

  const cols = header.width || 80;
  const fontSize = fontFor(screen.getBoundingClientRect().width - 8, cols);
  const term = new Terminal({ cols, rows: header.height || 24, disableStdin: true, scrollback: 5000, fontSize });
  const unadopt = adoptXtermStyles(screen);
  term.open(screen);
  const total = events.length ? events[events.length - 1][0] : 0;
  let next = 0; // the next event to write
  let at = 0; // recording seconds played
  let startedAt = 0; // performance.now() minus at/speed when playing
  let timer = 0;

  const label = () => {
    time.textContent = `${at.toFixed(1)} / ${total.toFixed(1)} s`;
    play.textContent = words(box.dataset.replay === 'playing' ? 'jobs.replay.pause' : box.dataset.replay === 'done' ? 'jobs.replay.again' : 'jobs.replay.play');
  };
  const rate = () => Number(speed.value) || 1;
  const tick = () => {
    timer = 0;
    at = ((performance.now() - startedAt) / 1000) * rate();
    let out = '';
    while (next < events.length && events[next][0] <= at) {
      const [, code, data] = events[next++];
      if (code === 'o') out += data;
      else if (code === 'r') {
        if (out) term.write(out);
        out = '';
        const sz = parseSize(data);
        if (sz) term.resize(sz.cols, sz.rows);
      }
    }
    if (next >= events.length) {
      at = total;
      // The dataset changes once xterm.js has drawn the last output.
      term.write(out, () => {
        box.dataset.replay = 'done';
        label();
      });
      return;
    }
    if (out) term.write(out);
    label();
    timer = window.setTimeout(tick, Math.min(250, Math.max(4, ((events[next][0] - at) * 1000) / rate())));
  };
  const start = () => {
    if (box.dataset.replay === 'done') {
      term.reset();
      term.resize(header.width || 80, header.height || 24);
      next = 0;
      at = 0;
    }
    box.dataset.replay = 'playing';
    startedAt = performance.now() - (at * 1000) / rate();
    tick();
  };
  const pause = () => {
    window.clearTimeout(timer);
    timer = 0;
    box.dataset.replay = 'paused';
    label();
  };
  play.addEventListener('click', () => (box.dataset.replay === 'playing' ? pause() : start()));
  speed.addEventListener('change', () => {
    if (box.dataset.replay === 'playing') startedAt = performance.now() - (at * 1000) / rate();
  });
  box.dataset.replay = 'paused';
  label();
  return () => {
    window.clearTimeout(timer);
    term.dispose();
    unadopt();
  };
}

