import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkJSON } from '../session/strictjson.js';
import { parseEnvelope } from '../session/signaling.js';
import { decodeResponseHead, decodeAbort } from '../session/frames.js';

const sess = 'abcdefgh12345678';
const enc = new TextEncoder();

// The cases of proto's TestDecodersRefuseInvalidUTF8AndDuplicateKeys that a
// JavaScript string can carry (invalid UTF-8 never becomes one).
test('parseEnvelope refuses repeated keys and lone surrogates, as proto.Decode', () => {
  const bad = [
    `{"v":1,"type":"hello","type":"offer","data":{"role":"agent"}}`,
    `{"v":1,"type":"hello","Type":"offer","data":{"role":"agent"}}`,
    `{"v":1,"type":"offer","session":"${sess}","\u017fession":"zzzzzzzz","data":{"type":"offer","sdp":"v=0"}}`,
    `{"v":1,"type":"hello","data":{"role":"agent","role":"client"}}`,
    `{"v":1,"type":"offer","session":"${sess}","data":{"type":"offer","sdp":"v=0","sdp":"v=1"}}`,
    `{"v":1,"type":"offer","session":"${sess}","session":"zzzzzzzz","data":{"type":"offer","sdp":"v=0"}}`,
    `{"v":1,"type":"hello","data":{"role":"agent","software":"x\\ud800y"}}`,
    `{"v":1,"type":"hello","data":{"role":"agent","software":"\\udc00"}}`,
    `{"v":1,"type":"hello","data":{"role":"agent","software":"\ud800"}}`, // a raw lone surrogate
  ];
  for (const text of bad) {
    assert.throws(() => parseEnvelope(text), (e) => e.code === 'bad_message', text);
  }
  // Repeated keys in different objects, keys inside strings, a valid pair and
  // non-ASCII text all pass.
  const ok = `{"v":1,"type":"answer","session":"${sess}","data":{"type":"answer","sdp":"a=\\"type\\":1 \\ud83d\\ude00 café","x":{"type":1},"y":[{"type":2},{"type":3}]}}`;
  assert.equal(parseEnvelope(ok).type, 'answer');
});

test('tunnel heads refuse repeated keys, as proto.DecodeResponseHead', () => {
  assert.throws(() => decodeResponseHead(enc.encode('{"status":200,"status":302}')), /repeats the key/);
  assert.throws(() => decodeResponseHead(enc.encode('{"status":200,"header":{"Location":["/a"],"location":["/b"]}}')), /repeats the key/);
  assert.throws(() => decodeResponseHead(Uint8Array.of(0x7b, 0xff, 0x7d)), /not UTF-8/);
  assert.equal(decodeResponseHead(enc.encode('{"status":200,"header":{"A":["1"],"B":["2"]}}')).status, 200);
  assert.equal(decodeAbort(enc.encode('{"code":"canceled","code":"internal"}')).code, 'bad_message');
});

// A small fuzz of the checker against a reference: for random objects, the
// text JSON.stringify makes passes, and the same text with its first key
// repeated fails.
test('checkJSON accepts what JSON.stringify makes and refuses a repeated first key', () => {
  let seed = 7;
  const rnd = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
  const keys = ['a', 'b', 'type', 'Type', 'sdp', 'x"y', 'k\\', 'é', '\u212a'];
  const value = (d) => {
    switch (rnd(d > 3 ? 3 : 6)) {
      case 0: return rnd(1000);
      case 1: return keys[rnd(keys.length)] + ' "{[,]}"';
      case 2: return null;
      case 3: return Array.from({ length: rnd(3) }, () => value(d + 1));
      default: {
        const o = {};
        for (let i = rnd(4); i > 0; i--) o[keys[rnd(keys.length)] + rnd(3)] = value(d + 1);
        return o;
      }
    }
  };
  for (let n = 0; n < 500; n++) {
    const o = { first: value(0), ...(rnd(2) ? { second: value(0) } : {}) };
    const text = JSON.stringify(o);
    assert.doesNotThrow(() => checkJSON(text), text);
    const dup = text.replace('{"first":', `{"FIRST":0,"first":`);
    assert.throws(() => checkJSON(dup), /repeats the key/, dup);
  }
});
