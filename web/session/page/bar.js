// The small bar of popped-out tabs: a frame of the session window's origin
// (/__t/bar.html, which only this device origin may frame) that shows what
// the session window's toolbar shows — device, time left, path — and can end
// the session. It holds nothing: the session window feeds it over a
// BroadcastChannel of its own origin, which the device's page cannot reach.
// The page can hide or remove it.
feature('bar', (shim) => {
  if (!shim.topLevel) return;
  const add = () => {
    if (document.getElementById('porthole-bar')) return;
    const f = document.createElement('iframe');
    f.id = 'porthole-bar';
    f.title = 'Porthole session';
    f.src = shim.shellOrigin + '/__t/bar.html';
    f.setAttribute('style', 'position:fixed !important;right:8px !important;bottom:8px !important;' +
      'width:460px !important;max-width:calc(100vw - 16px) !important;height:32px !important;border:0 !important;' +
      'border-radius:6px !important;box-shadow:0 2px 10px rgba(0,0,0,.35) !important;z-index:2147483647 !important;' +
      'display:block !important;visibility:visible !important;opacity:1 !important;background:#1f2933 !important;');
    (document.body || document.documentElement).appendChild(f);
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', add);
  else add();
});
