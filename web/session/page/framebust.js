// Frame-busting pages. The OWASP anti-clickjacking idiom and its variants
// hide the page unless it is the top window (html or body display:none,
// visibility:hidden) and try to navigate the top window to themselves
// (top.location = self.location, top.location.replace(...)), testing
// self === top, top != self, window.top !== window.self or
// parent.frames.length. In the session window's sandboxed frame the
// navigation is refused (a SecurityError) and the page stays hidden. This
// cannot be fixed from inside the frame — window.top cannot be redefined —
// so the shim only notices and tells the session window, which shows "This
// page only works in its own tab" next to the button that opens it there.
feature('framebust', (shim) => {
  if (!shim.inShellFrame) return;
  // Each finding is told once: a refused navigation, and a page that
  // stays hidden (which the session window covers with an explanation).
  const told = {};
  const tell = (reason) => {
    if (told[reason]) return;
    told[reason] = true;
    shim.hint('framebust', { reason });
  };
  // An uncaught SecurityError from a refused top navigation, or from
  // reading the session window's location.
  window.addEventListener('error', (e) => {
    const msg = String((e && e.message) || '');
    if (/permission to navigate|navigate the target frame|cross-origin frame|top-level window/i.test(msg)) tell('top-navigation');
  });
  const hidden = (el) => {
    if (!el) return false;
    const cs = getComputedStyle(el);
    return cs.display === 'none' || cs.visibility === 'hidden' || cs.opacity === '0';
  };
  const check = () => {
    if (hidden(document.documentElement) || hidden(document.body)) tell('hidden');
  };
  document.addEventListener('DOMContentLoaded', check);
  window.addEventListener('load', () => {
    check();
    // Pages that reveal themselves from a load handler get the chance.
    setTimeout(check, 300);
  });
});
