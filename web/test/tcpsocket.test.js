import { test } from 'node:test';
import assert from 'node:assert/strict';
import { viewOnlyFilter } from '../session/tcpsocket.js';

const u8 = (...parts) => new Uint8Array(parts.flat());
const fbur = [3, 1, 0, 0, 0, 0, 1, 64, 0, 200]; // FramebufferUpdateRequest, 10 bytes
const key = [4, 1, 0, 0, 0, 0, 0, 0x71]; // KeyEvent q down
const pointer = [5, 1, 0, 10, 0, 20]; // PointerEvent, button 1
const cut = [6, 0, 0, 0, 0, 0, 0, 3, 0x61, 0x62, 0x63]; // ClientCutText "abc"
const fence = [248, 0, 0, 0, 0, 0, 0, 1, 2, 9, 9]; // Fence with 2 bytes of payload
const encodings = [2, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1]; // SetEncodings raw, copyrect

test('view-only passes the handshake untouched', () => {
  const f = viewOnlyFilter(() => false);
  const hs = u8([0x52, 0x46, 0x42], key);
  assert.equal(f(hs), hs);
});

test('view-only drops keys, pointer and clipboard, keeps updates, encodings and fences', () => {
  const f = viewOnlyFilter(() => true);
  assert.equal(f(u8(key)), null);
  assert.equal(f(u8(pointer, pointer)), null);
  assert.equal(f(u8(cut)), null);
  assert.deepEqual(f(u8(key, fbur, pointer, fence, cut, encodings)), u8(fbur, fence, encodings));
});

test('view-only drops what it cannot parse, and everything after it', () => {
  const f = viewOnlyFilter(() => true);
  assert.deepEqual(f(u8(fbur, [99, 1, 2, 3], fbur)), u8(fbur));
  assert.deepEqual(f(u8(fbur, [3, 1, 0])), u8(fbur)); // a truncated message
  assert.equal(f(u8([251, 0, 0, 100, 0, 100, 1, 0], new Array(16).fill(0))), null); // SetDesktopSize
});
