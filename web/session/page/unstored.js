// Keeps a top-level device window (a popped-out tab, a window the page
// opened) out of Chromium's back-forward cache, as the session means its
// documents to be (headers.js responseHeaders: no-store) and as Chromium
// 156 no longer does for a no-store document on its own.
//
// It is also what makes a navigation in a popped-out tab cheap. A page
// that may enter the cache has each of its navigations moved to a new
// browsing context group (a "proactive BrowsingInstance swap"), where the
// browser has not yet seen the device origin's Origin-Agent-Cluster
// header: it guesses a site-keyed process, starts a new renderer for it
// and throws it away when the response arrives origin-keyed. That cost
// about 12 ms of the browser's main thread before each request and a
// renderer start per navigation (make bench, Chromium trace: the swap
// result SHOULD_SWAP_BROWSING_INSTANCE_YES_SAME_SITE_PROACTIVE_SWAP). A
// no-store answer to a script's request in a no-store document is a
// "sticky" reason against the cache (JsNetworkRequestReceivedCacheControl-
// NoStoreResource), which Chromium checks before it swaps; the worker
// answers /__t/unstored itself, so it costs no round trip to the shell.
// Frames never enter the cache: the session window's frame needs nothing.
feature('unstored', (shim) => {
  if (!shim.topLevel || typeof XMLHttpRequest !== 'function') return;
  const x = new XMLHttpRequest();
  x.open('GET', '/__t/unstored');
  x.send();
});
