import { test } from 'node:test';
import assert from 'node:assert/strict';
import { saveToken, loadToken, forgetToken } from '../session/tokenstore.js';

class Store {
  constructor(m = {}) { this.m = { ...m }; }
  getItem(k) { return k in this.m ? this.m[k] : null; }
  setItem(k, v) { this.m[k] = String(v); }
  removeItem(k) { delete this.m[k]; }
}

const TOKEN = 'UNZ3II2QsMmiBd4AJPtzvHeN9ph__HMBtYlYC0bnE6Q';

test('the token comes back in the same window, after a reload', () => {
  const win = { name: '' };
  const store = new Store();
  saveToken(win, store, TOKEN);
  assert.equal(loadToken(win, store), TOKEN);
  // Neither half says anything about the token on its own.
  assert.ok(!win.name.includes(TOKEN) && !JSON.stringify(store.m).includes(TOKEN));
  // A reload keeps both.
  assert.equal(loadToken({ name: win.name }, new Store(store.m)), TOKEN);
});

test('a popup with a copy of the tab\'s sessionStorage gets nothing', () => {
  const win = { name: '' };
  const store = new Store();
  saveToken(win, store, TOKEN);
  for (const name of ['', '_blank', 'porthole-pad:', 'porthole-pad:' + btoa('x'.repeat(TOKEN.length)), 'porthole-pad:!!!']) {
    const got = loadToken({ name }, new Store(store.m));
    assert.notEqual(got, TOKEN, name);
    if (name !== 'porthole-pad:' + btoa('x'.repeat(TOKEN.length))) assert.equal(got, '', name);
  }
  // Two saves use two pads.
  const a = { name: '' };
  const b = { name: '' };
  saveToken(a, new Store(), TOKEN);
  saveToken(b, new Store(), TOKEN);
  assert.notEqual(a.name, b.name);
});

test('forget clears both halves, and leaves a foreign window name alone', () => {
  const win = { name: '' };
  const store = new Store();
  saveToken(win, store, TOKEN);
  forgetToken(win, store);
  assert.equal(win.name, '');
  assert.equal(loadToken(win, store), '');
  const other = { name: 'someone-else' };
  forgetToken(other, new Store());
  assert.equal(other.name, 'someone-else');
});
