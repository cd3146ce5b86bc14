// URLs the page builds at run time that name the device itself (issue 13
// item 3): "http://" + ip + "/status.json", img.src = 'http://' + host +
// '/logo.png', location.href = 'https://' + location.hostname ... of the
// device's own address. The agent rewrites the device's URLs it finds in
// bodies, but not those a script puts together. With each document it
// sends the device's own origins (Porthole-Device-Origins: its address,
// Host, names and mDNS name, http and https, twin ports), which the worker
// puts on the shim's script element; here a URL on one of them becomes the
// same path on this origin before the browser uses it: in fetch, XHR,
// EventSource, WebSocket, the src/href/action/data of elements (properties,
// setAttribute, and markup inserted later), window.open, and navigations
// (the Navigation API's navigate event, since location itself cannot be
// hooked). Anything else is left to offsite.js. Like every part of the
// shim, this is a compatibility aid, not a boundary: the session's CSP
// and the agent's own table of the device decide what is reachable.
feature('deviceurls', (shim) => {
  const script = document.currentScript;
  const attr = script && script.getAttribute('data-device-origins');
  const origins = new Set(String(attr || '').split(/\s+/).filter(Boolean));
  shim.toSession = () => '';
  if (!origins.size) return;
  const here = location.origin;
  // toSession(raw) → the session URL for a URL on the device's own
  // origin, '' for anything else.
  const toSession = (raw) => {
    let u;
    try {
      u = new URL(String(raw), location.href);
    } catch (err) {
      return '';
    }
    const ws = u.protocol === 'ws:' || u.protocol === 'wss:';
    if (!ws && u.protocol !== 'http:' && u.protocol !== 'https:') return '';
    const origin = (u.protocol === 'wss:' ? 'https:' : u.protocol === 'ws:' ? 'http:' : u.protocol) + '//' + u.host;
    if (origin === here || !origins.has(origin)) return '';
    const rest = u.pathname + u.search + u.hash;
    return ws ? (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + rest : here + rest;
  };
  shim.toSession = toSession;
  const mapped = (raw) => toSession(raw) || raw;

  const fetch = window.fetch;
  if (typeof fetch === 'function') {
    window.fetch = function (input, init) {
      if (typeof input === 'string' || input instanceof URL) return fetch.call(this, mapped(input), init);
      if (input instanceof Request) {
        const to = toSession(input.url);
        if (to) return fetch.call(this, new Request(to, input), init);
      }
      return fetch.call(this, input, init);
    };
  }
  const xhrOpen = XMLHttpRequest.prototype.open;
  XMLHttpRequest.prototype.open = function (method, url, ...rest) {
    return xhrOpen.call(this, method, mapped(url), ...rest);
  };
  for (const name of ['EventSource', 'WebSocket']) {
    const Base = window[name];
    if (typeof Base !== 'function') continue;
    const Mapped = class extends Base {
      constructor(url, ...rest) {
        super(mapped(url), ...rest);
      }
    };
    Object.defineProperty(Mapped, 'name', { value: name });
    window[name] = Mapped;
  }

  // Element URLs: the reflected properties and setAttribute.
  const props = [
    ['HTMLImageElement', 'src'], ['HTMLScriptElement', 'src'], ['HTMLIFrameElement', 'src'],
    ['HTMLFrameElement', 'src'], ['HTMLSourceElement', 'src'], ['HTMLMediaElement', 'src'],
    ['HTMLEmbedElement', 'src'], ['HTMLTrackElement', 'src'], ['HTMLInputElement', 'src'],
    ['HTMLAnchorElement', 'href'], ['HTMLAreaElement', 'href'], ['HTMLLinkElement', 'href'],
    ['HTMLBaseElement', 'href'], ['HTMLFormElement', 'action'], ['HTMLButtonElement', 'formAction'],
    ['HTMLInputElement', 'formAction'], ['HTMLObjectElement', 'data'],
  ];
  for (const [cls, prop] of props) {
    const proto = window[cls] && window[cls].prototype;
    const d = proto && Object.getOwnPropertyDescriptor(proto, prop);
    if (!d || typeof d.set !== 'function') continue;
    Object.defineProperty(proto, prop, Object.assign({}, d, { set(v) { d.set.call(this, mapped(v)); } }));
  }
  const URL_ATTRS = new Set(['src', 'href', 'action', 'formaction', 'data', 'poster']);
  const setAttribute = Element.prototype.setAttribute;
  Element.prototype.setAttribute = function (name, value) {
    return setAttribute.call(this, name, URL_ATTRS.has(String(name).toLowerCase()) ? mapped(value) : value);
  };
  // Markup inserted later (innerHTML, insertAdjacentHTML, document.write):
  // fixed as soon as it is in the document.
  const fix = (el) => {
    if (!el.getAttribute) return;
    for (const a of URL_ATTRS) {
      const v = el.getAttribute(a);
      const to = v && toSession(v);
      if (to) setAttribute.call(el, a, to);
    }
  };
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === 'attributes') fix(r.target);
      for (const n of r.addedNodes || []) {
        if (n.nodeType !== 1) continue;
        const added = /** @type {Element} */ (n); // an element node
        fix(added);
        if (added.querySelectorAll) for (const el of added.querySelectorAll('[src],[href],[action],[formaction],[data],[poster]')) fix(el);
      }
    }
  }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: [...URL_ATTRS] });

  const open = window.open;
  if (typeof open === 'function') {
    window.open = function (url, ...rest) {
      return open.call(this, url === undefined || url === '' ? url : mapped(url), ...rest);
    };
  }
  // location.href = …, location.assign/replace, window.location = …: the
  // navigation is cancelled and made again to the session's URL.
  const nav = /** @type {any} */ (window).navigation; // the Navigation API, not in TypeScript's DOM types yet
  if (nav && typeof nav.addEventListener === 'function') {
    nav.addEventListener('navigate', (e) => {
      if (!e.cancelable || e.formData || e.hashChange) return;
      const to = toSession(e.destination.url);
      if (!to) return;
      e.preventDefault();
      if (e.navigationType === 'replace') location.replace(to);
      else location.assign(to);
    });
  }
});
