// Links, forms and window.open that lead outside the device (issue 13):
// the agent already rewrote the device's own absolute URLs to this origin,
// so a URL on another origin is someone else's (a vendor's site, a host
// the page built at run time). Instead of leaving the session (and, in the
// session window, the bare "This content is blocked"), the page goes to
// the worker's interstitial, which says where the link led; nothing is
// fetched. Only http(s) URLs; javascript:, mailto: and the like are the
// page's own business, and location assignments cannot be hooked.
feature('offsite', (shim) => {
  const PATH = '/__t/offsite?u=';
  // The device's own URLs (deviceurls.js) stay in the session.
  const own = (raw) => (shim.toSession ? shim.toSession(raw) : '');
  const offsite = (raw) => {
    if (own(raw)) return '';
    try {
      const u = new URL(String(raw), location.href);
      return (u.protocol === 'http:' || u.protocol === 'https:') && u.origin !== location.origin ? u.href : '';
    } catch (err) {
      return '';
    }
  };
  const interstitial = (url) => PATH + encodeURIComponent(url.slice(0, 1000));
  document.addEventListener('click', (e) => {
    if (e.defaultPrevented || e.button !== 0) return;
    const el = /** @type {Element} */ (e.target); // checked before use: a text node has no closest
    const a = /** @type {HTMLAnchorElement | HTMLAreaElement | null} */ (el && el.closest && el.closest('a[href], area[href]'));
    if (!a || a.hasAttribute('download')) return;
    const to = own(a.href);
    if (to) {
      a.href = to; // then the browser follows it as usual
      return;
    }
    const url = offsite(a.href);
    if (!url) return;
    e.preventDefault();
    const target = (a.target || '').toLowerCase();
    if (target === '_blank') window.open(interstitial(url), '_blank', 'noopener');
    else location.assign(interstitial(url));
  }, true);
  document.addEventListener('submit', (e) => {
    const f = /** @type {HTMLFormElement} */ (e.target); // checked: only a form is submitted
    if (!f || typeof f.getAttribute !== 'function') return;
    const to = own(f.action);
    if (to) {
      f.action = to;
      return;
    }
    const url = offsite(f.action);
    if (!url) return;
    e.preventDefault();
    location.assign(interstitial(url));
  }, true);
  const open = window.open;
  if (typeof open === 'function') {
    window.open = function (url, ...rest) {
      const out = url === undefined || url === '' ? '' : offsite(url);
      return open.call(this, out ? interstitial(out) : url, ...rest);
    };
  }
});
