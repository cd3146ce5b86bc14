// Origin: SHELL and APP origins (the session window's terminal and the
// Jobs tab's replay both run xterm.js under a policy without inline
// styles; the app origin serves this file at /session/xtermstyles.js).

/**
 * xterm.js styles its rows (colours, font, cell sizes) through <style>
 * elements it adds inside the terminal, which this origin's policy
 * (style-src 'self', no inline styles) does not apply: the rows would be
 * black on black. adoptXtermStyles applies their text as constructed
 * stylesheets (CSSOM, which the policy allows) and keeps them in step as
 * xterm.js rewrites them. It returns a function that stops.
 */
export function adoptXtermStyles(root) {
  /** @type {Map<Element, CSSStyleSheet>} */
  const sheets = new Map();
  const sync = () => {
    for (const st of root.querySelectorAll('style')) {
      let sheet = sheets.get(st);
      if (!sheet) {
        sheet = new CSSStyleSheet();
        sheets.set(st, sheet);
        document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
      }
      sheet.replaceSync(st.textContent || '');
    }
  };
  const isStyle = (n) => n?.nodeName === 'STYLE';
  const mo = new MutationObserver((records) => {
    if (records.some((r) => isStyle(r.target) || isStyle(r.target.parentNode) || [...r.addedNodes].some(isStyle))) sync();
  });
  mo.observe(root, { subtree: true, childList: true, characterData: true });
  sync();
  return () => {
    mo.disconnect();
    const mine = new Set(sheets.values());
    document.adoptedStyleSheets = document.adoptedStyleSheets.filter((s) => !mine.has(s));
  };
}
