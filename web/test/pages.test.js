import { test } from 'node:test';
import assert from 'node:assert/strict';
import { escapeHTML, errorPage, endedPage, offsitePage } from '../session/pages.js';

test('pages escape what came from the agent or device', () => {
  assert.equal(escapeHTML(`<a href="x">'&`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;');
  const p = errorPage('device_failed', '<script>alert(1)</script>');
  assert.ok(!p.includes('<script>'));
  assert.ok(p.includes('&lt;script&gt;'));
  assert.ok(p.includes('device_failed'));
  assert.ok(offsitePage('http://x/"><img src=x onerror=alert(1)>').includes('&quot;&gt;&lt;img'));
  assert.match(endedPage('expired'), /Session ended/);
  assert.match(endedPage('expired'), /<code>expired<\/code>/);
});
