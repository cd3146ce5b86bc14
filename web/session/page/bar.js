// The small bar of popped-out tabs: a frame of the session window's origin
// (/__t/bar.html, which only this device origin may frame) that shows what
// the session window's toolbar shows — device, time left, path — and can end
// the session. It holds nothing: the session window feeds it over a
// BroadcastChannel of its own origin, which the device's page cannot reach.
// The page can hide or remove it.
//
// The frame sits in a closed shadow root: a frame there is not one of the
// window's frames (window.length, window.frames, measured in Chromium 156),
// so a page that busts frames with `parent.frames.length > 0` still finds
// itself alone in its tab.
// How long after DOMContentLoaded the bar waits for the load event at most.
const BAR_LATEST = 2000;
// How long after the load event the bar waits: see below.
const BAR_SETTLE = 500;

feature('bar', (shim) => {
  if (!shim.topLevel) return;
  let added = false;
  const add = () => {
    if (added || !document.body) return;
    added = true;
    const host = document.createElement('porthole-bar');
    host.setAttribute('style', 'all:initial !important;position:fixed !important;right:8px !important;bottom:8px !important;' +
      'width:460px !important;max-width:calc(100vw - 16px) !important;height:32px !important;z-index:2147483647 !important;' +
      'display:block !important;visibility:visible !important;opacity:1 !important;');
    const root = host.attachShadow({ mode: 'closed' });
    const f = document.createElement('iframe');
    f.title = TEXT['title.session'];
    f.src = shim.shellOrigin + '/__t/bar.html';
    f.setAttribute('style', 'width:100%;height:100%;border:0;border-radius:6px;box-shadow:0 2px 10px rgba(0,0,0,.35);' +
      'background:#1f2933;color-scheme:dark;display:block;');
    root.appendChild(f);
    document.body.appendChild(host);
  };
  // After the page's own load event: the bar's frame comes from the
  // session window's origin, and a frame still loading holds the page's
  // load event (100-200 ms a navigation, measured by make bench), which the
  // page's own scripts may wait for. And a moment after it: the bar's frame
  // loads in the session window's renderer, on the main thread that carries
  // every request of the session, so loading it at once made a navigation
  // that follows the load closely (a quick click, a page that moves on by
  // itself) and the page's own first requests after its load wait behind it
  // (make bench, own tab: 72-137 ms over the frame's navigation with the bar
  // at the load event, 4-19 ms under it with the bar 600 ms later, two runs
  // each; Chromium trace: the request's message queued behind bar.html's
  // parse, style and modules). A page whose load never comes gets the bar a
  // little after its DOM is ready all the same.
  if (document.readyState === 'complete') add();
  else {
    window.addEventListener('load', () => setTimeout(add, BAR_SETTLE), { once: true });
    document.addEventListener('DOMContentLoaded', () => setTimeout(add, BAR_LATEST), { once: true });
  }
});
