import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  FrameType, MAX_CHUNK, MAX_FRAME, encodeFrame, encodeJSONFrame, encodeAbort, dataFrames,
  parseFrame, decodeResponseHead, decodeAbort, canonicalKey, TunnelError,
} from '../session/frames.js';

const enc = new TextEncoder();
const bytes = (s) => enc.encode(s);

test('frame types equal proto/tunnel.go', () => {
  assert.deepEqual({ ...FrameType }, {
    Request: 1, Response: 2, TCPOpen: 3, TCPOpened: 4, Data: 0x10, End: 0x11, Abort: 0x12,
    WSOpen: 5, WSOpened: 6, WSMessage: 0x13, WSClose: 0x14, SSHOpen: 7, SSHOpened: 8, SSHResize: 0x15,
  });
  assert.equal(MAX_CHUNK, 16384);
  assert.equal(MAX_FRAME, 32769);
});

// The cases of proto's TestParseFrameRules.
test('parseFrame follows proto.ParseFrame', () => {
  const big = new Uint8Array(MAX_CHUNK + 1).fill(120);
  const cases = [
    ['empty', new Uint8Array(0), false],
    ['unknown type', Uint8Array.of(0x7f), false],
    ['data', encodeFrame(FrameType.Data, bytes('abc')), true],
    ['empty data', encodeFrame(FrameType.Data), false],
    ['oversize data', encodeFrame(FrameType.Data, big), false],
    ['max data', encodeFrame(FrameType.Data, big.subarray(0, MAX_CHUNK)), true],
    ['end', encodeFrame(FrameType.End), true],
    ['end with payload', encodeFrame(FrameType.End, bytes('x')), false],
    ['tcp opened', encodeFrame(FrameType.TCPOpened), true],
    ['request without head', encodeFrame(FrameType.Request), false],
    ['abort', encodeFrame(FrameType.Abort, bytes('{"code":"canceled"}')), true],
    ['oversize frame', encodeFrame(FrameType.Request, new Uint8Array(MAX_FRAME).fill(120)), false],
  ];
  for (const [name, msg, ok] of cases) {
    if (!ok) {
      assert.throws(() => parseFrame(msg), TunnelError, name);
      continue;
    }
    // Both an ArrayBuffer (as a data channel delivers) and a view work.
    for (const m of [msg, msg.buffer.slice(msg.byteOffset, msg.byteOffset + msg.byteLength)]) {
      const f = parseFrame(m);
      assert.equal(f.type, msg[0], name);
      assert.deepEqual([...f.payload], [...msg.subarray(1)], name);
    }
  }
});

test('dataFrames splits at MAX_CHUNK', () => {
  const body = new Uint8Array(2 * MAX_CHUNK + 5).map((_, i) => i & 0xff);
  const frames = [...dataFrames(body)];
  assert.deepEqual(frames.map((f) => f.byteLength), [MAX_CHUNK + 1, MAX_CHUNK + 1, 6]);
  const joined = new Uint8Array(frames.reduce((n, f) => n + f.byteLength - 1, 0));
  let off = 0;
  for (const f of frames) {
    assert.equal(parseFrame(f).type, FrameType.Data);
    joined.set(f.subarray(1), off);
    off += f.byteLength - 1;
  }
  assert.deepEqual(joined, body);
  assert.equal([...dataFrames(new Uint8Array(0))].length, 0);
});

test('JSON frames', () => {
  const f = encodeJSONFrame(FrameType.Request, { method: 'GET', target: '/', contentLength: 0 });
  assert.equal(f[0], FrameType.Request);
  assert.equal(new TextDecoder().decode(f.subarray(1)), '{"method":"GET","target":"/","contentLength":0}');
  assert.throws(() => encodeJSONFrame(FrameType.Request, { x: 'y'.repeat(MAX_FRAME) }), (e) => e.code === 'too_large');
  const a = encodeAbort('canceled', 'gone');
  assert.equal(new TextDecoder().decode(a.subarray(1)), '{"code":"canceled","message":"gone"}');
  assert.equal(new TextDecoder().decode(encodeAbort('nonsense').subarray(1)), '{"code":"internal"}');
});

// The cases of proto's TestDecodeResponseHead, plus canonical keys.
test('decodeResponseHead follows proto.DecodeResponseHead', () => {
  const cases = [
    ['{"status":200,"header":{"Content-Type":["text/html"]}}', true],
    ['{"status":200,"cookies":["ui_lang=en"]}', true],
    ['{"status":42}', false],
    ['{"status":200,"header":{"X":["a\\nb"]}}', false],
    ['{"status":200,"cookies":["a=b\\r\\nSet-Cookie: c=d"]}', false],
    ['{"status":200,"extra":1}', false],
    ['{"status":"200"}', false],
    ['{"status":200,"header":{"X A":["1"]}}', false],
    ['not json', false],
  ];
  for (const [json, ok] of cases) {
    if (ok) decodeResponseHead(bytes(json));
    else assert.throws(() => decodeResponseHead(bytes(json)), TunnelError, json);
  }
  const h = decodeResponseHead(bytes('{"status":302,"header":{"location":["/a"],"x-custom-thing":["1"]},"cookies":["ui_lang=en"]}'));
  assert.deepEqual(h, { status: 302, header: { Location: ['/a'], 'X-Custom-Thing': ['1'] }, cookies: ['ui_lang=en'] });
  // One key in two spellings is a repeated key to Go's decoder (CheckJSON):
  // refused, not merged.
  assert.throws(() => decodeResponseHead(bytes('{"status":302,"header":{"location":["/a"],"Location":["/b"]}}')), /repeats the key/);
});

// The cases of proto's TestDecodeAbortNeverFails.
test('decodeAbort never fails', () => {
  const cases = [
    ['{"code":"port_not_allowed","message":"port 23 is not declared"}', 'port_not_allowed', 'port 23 is not declared'],
    ['{"code":"whatever"}', 'internal', ''],
    ['garbage', 'bad_message', 'malformed abort'],
  ];
  for (const [json, code, message] of cases) {
    const e = decodeAbort(bytes(json));
    assert.equal(e.code, code);
    assert.equal(e.detail, message);
  }
});

test('canonicalKey matches Go', () => {
  const cases = [
    ['content-type', 'Content-Type'], ['X-FORWARDED-FOR', 'X-Forwarded-For'], ['etag', 'Etag'],
    ['www-authenticate', 'Www-Authenticate'], ['a b', 'a b'], ['x_y', 'X_y'],
  ];
  for (const [in_, want] of cases) assert.equal(canonicalKey(in_), want);
});

test('terminal frames parse with the Go rules and the goldens', async () => {
  const { golden } = await import('./golden.js');
  const te = new TextEncoder();
  for (const [type, name] of [[FrameType.SSHOpen, 'ssh-open'], [FrameType.SSHOpened, 'ssh-opened'], [FrameType.SSHResize, 'ssh-resize']]) {
    const f = parseFrame(encodeFrame(type, te.encode(golden(`tunnel/${name}`))));
    assert.equal(f.type, type);
  }
  assert.throws(() => parseFrame(encodeFrame(FrameType.SSHResize)), /without payload/);
});
