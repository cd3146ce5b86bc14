// The browser's half of the compatibility fields (issue 13), checked
// against the tunnel heads proto/compat_golden_test.go freezes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { golden } from './golden.js';
import { decodeResponseHead, parseFrame, FrameType, encodeFrame } from '../session/frames.js';

const bytes = (s) => new TextEncoder().encode(s);

test('a response head with deleted cookies and a legacy TLS report decodes', () => {
  const h = decodeResponseHead(bytes(golden('tunnel/response-compat')));
  assert.deepEqual(h.deletedCookies, ['sid_view']);
  assert.equal(h.tls.version, 'TLS 1.0');
  assert.equal(h.tls.cipher, 'TLS_RSA_WITH_AES_128_CBC_SHA');
  assert.deepEqual(h.tls.needs, ['TLS 1.0', 'RSA key exchange']);
  assert.match(h.tls.note, /only speaks TLS 1\.0/);
  // Without them, the fields are empty, as before.
  const plain = decodeResponseHead(bytes('{"status":200}'));
  assert.equal(plain.deletedCookies, undefined);
  assert.equal(plain.tls, undefined);
});

test('bad deleted cookies and tls reports are refused', () => {
  for (const json of [
    '{"status":200,"deletedCookies":["a=b"]}',
    '{"status":200,"deletedCookies":"sid"}',
    '{"status":200,"tls":{"version":"TLS 1.0\\n"}}',
    '{"status":200,"tls":{"version":"x","evil":1}}',
    '{"status":200,"tls":"TLS 1.0"}',
  ]) {
    assert.throws(() => decodeResponseHead(bytes(json)), /bad_message/, json);
  }
});

test('WebSocket frame types parse with their size rules', () => {
  assert.equal(parseFrame(encodeFrame(FrameType.WSOpen, bytes(golden('tunnel/ws-open')))).type, FrameType.WSOpen);
  assert.equal(parseFrame(encodeFrame(FrameType.WSClose)).type, FrameType.WSClose);
  assert.throws(() => parseFrame(encodeFrame(FrameType.WSMessage)), /bad_message/);
  assert.throws(() => parseFrame(encodeFrame(FrameType.WSMessage, new Uint8Array(1 + (16 << 10) + 1))), /bad_message/);
  assert.equal(parseFrame(encodeFrame(FrameType.WSMessage, new Uint8Array(1 + (16 << 10)))).payload.byteLength, 1 + (16 << 10));
});
