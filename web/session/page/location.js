// The frame's location, for the session window's toolbar (and so that
// reloading the window brings back the page the technician was on). The
// window cannot read it itself: the frame is cross-origin to it.
feature('location', (shim) => {
  if (!shim.inShellFrame) return;
  const report = () => shim.hint('location', { path: location.pathname + location.search + location.hash });
  report();
  for (const name of ['pushState', 'replaceState']) {
    const native = history[name];
    if (typeof native !== 'function') continue;
    history[name] = function (...args) {
      const r = native.apply(this, args);
      report();
      return r;
    };
  }
  window.addEventListener('popstate', report);
  window.addEventListener('hashchange', report);
});
