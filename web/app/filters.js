// Search and filters of the device list: one pure function over the
// overview, so the list, its counts and its empty state agree, and a
// unit test can hold it.

/**
 * @typedef {{ q?: string, site?: string, type?: string, state?: string }} DeviceFilter
 */

/** deviceType is the device's type for filters and icons: discovery's guess, else what its services say. */
export function deviceType(d) {
  if (d.type) return d.type;
  const kinds = (d.services || []).map((s) => s.kind);
  if (kinds.includes('web') || d.httpPort) return 'web';
  if (kinds.includes('ssh')) return 'ssh';
  if (kinds.includes('vnc')) return 'vnc';
  return 'other';
}

/** matches says whether device d of site passes filter f. */
export function matches(d, site, f) {
  if (f.site && site.id !== f.site) return false;
  if (f.type && deviceType(d) !== f.type) return false;
  switch (f.state) {
    case 'online':
      if (!d.online) return false;
      break;
    case 'offline':
      if (d.online) return false;
      break;
    case 'enabled':
      if (!d.enabled) return false;
      break;
    case 'disabled':
      if (d.enabled) return false;
      break;
  }
  const q = (f.q || '').trim().toLowerCase();
  if (!q) return true;
  return [d.name, d.id, d.model, d.serial, deviceType(d), site.name].some((v) => typeof v === 'string' && v.toLowerCase().includes(q));
}

/** active says whether any filter is set. */
export const active = (f) => !!(f.site || f.type || f.state || (f.q || '').trim());

/** filterSites returns the sites with only their matching devices; with a filter set, sites left empty are dropped. */
export function filterSites(sites, f) {
  const out = [];
  for (const s of sites) {
    if (f.site && s.id !== f.site) continue;
    const devices = (s.devices || []).filter((d) => matches(d, s, f));
    if (active(f) && devices.length === 0) continue;
    out.push({ ...s, devices });
  }
  return out;
}

/** types lists the device types present, sorted. */
export function types(sites) {
  const set = new Set();
  for (const s of sites) for (const d of s.devices || []) set.add(deviceType(d));
  return [...set].sort();
}
