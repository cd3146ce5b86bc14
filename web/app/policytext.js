// The policies editor's text forms, pure so node --test can check them:
// a site's time windows as lines ("mon tue wed thu fri 08:00-18:00"), path
// rules and ports as comma-separated lists, and the next window in words
// in the site's own time zone.

const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

/**
 * parseWindows('mon tue 08:00-18:00\nsat 09:00-12:00') → [{days, from, to}].
 * Throws an Error naming the line that does not read.
 * @param {string} text
 */
export function parseWindows(text) {
  const out = [];
  const lines = String(text || '').split('\n').map((l) => l.trim()).filter(Boolean);
  lines.forEach((line, i) => {
    const m = line.toLowerCase().match(/^([a-z ,]+?)\s+(\d\d:\d\d)\s*[-–]\s*(\d\d:\d\d)$/);
    if (!m) throw new Error(`line ${i + 1}`);
    const days = m[1].split(/[ ,]+/).filter(Boolean);
    if (!days.length || days.some((d) => !DAYS.includes(d))) throw new Error(`line ${i + 1}`);
    out.push({ days, from: m[2], to: m[3] });
  });
  return out;
}

/** formatWindows([{days, from, to}]) → the editor's lines. */
export function formatWindows(windows) {
  return (windows || []).map((w) => `${(w.days || []).join(' ')} ${w.from}-${w.to}`).join('\n');
}

/** parseList('/a, /b') → ['/a', '/b']. */
export function parseList(text) {
  return String(text || '').split(/[,\n]/).map((s) => s.trim()).filter(Boolean);
}

/** parsePorts('80, 443') → [80, 443]; throws on anything else. */
export function parsePorts(text) {
  return parseList(text).map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(s);
    return n;
  });
}

/**
 * windowText('2027-01-18T07:00:00Z', 'Europe/Berlin') → 'Mon 18 Jan, 08:00 (Europe/Berlin)':
 * a time as the site's clocks show it.
 */
export function windowText(when, timeZone) {
  const zone = timeZone || 'UTC';
  const f = new Intl.DateTimeFormat('en-GB', { timeZone: zone, weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  return `${f.format(new Date(when))} (${zone})`;
}
