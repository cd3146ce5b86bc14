// The app's addresses: every view and admin section has its own hash, so
// the back button, reloads and links work. parseRoute is pure.
//
//   #devices               the device list (the default)
//   #jobs                  the job list
//   #jobs/<id>             one job, with its access log
//   #site                  a site admin's requests, live sessions and policies
//   #account               password, two-factor login, API tokens
//   #admin/<section>       users, sites, agents or audit (#admin = users)
//   #webhooks              a site's webhooks (admins and site admins)

export const VIEWS = ['devices', 'jobs', 'site', 'account', 'admin', 'webhooks'];
export const ADMIN_SECTIONS = ['users', 'sites', 'agents', 'audit'];

/**
 * parseRoute('#admin/agents', {admin: true}) → {view: 'admin', section:
 * 'agents', id: ''}. Unknown addresses, and admin addresses for someone
 * who is not an admin, give the device list.
 */
export function parseRoute(hash, { admin = false } = {}) {
  const [view = '', rest = ''] = String(hash || '').replace(/^#\/?/, '').split(/\/(.*)/s);
  const fallback = { view: 'devices', section: '', id: '' };
  if (!VIEWS.includes(view)) return fallback;
  if (view === 'admin') {
    if (!admin) return fallback;
    const section = ADMIN_SECTIONS.includes(rest) ? rest : 'users';
    return { view, section, id: '' };
  }
  if (view === 'jobs' && /^[A-Za-z0-9_-]{1,64}$/.test(rest)) return { view, section: '', id: rest };
  return { view, section: '', id: '' };
}

/** routeHash({view, section, id}) → the canonical hash of a route. */
export function routeHash({ view, section = '', id = '' }) {
  if (view === 'admin') return `#admin/${section || 'users'}`;
  if (view === 'jobs' && id) return `#jobs/${id}`;
  return `#${view}`;
}
