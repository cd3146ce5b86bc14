import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCast, parseSize, fontFor } from '../app/castplay.js';

test('fontFor fits the recorded columns, within 7 and 13 px', () => {
  assert.equal(fontFor(660, 80), 13); // 80 columns fit at the usual size
  assert.equal(fontFor(660, 120), 8); // a full-width terminal's recording is made smaller
  assert.equal(fontFor(660, 500), 7); // never below 7 px
  assert.equal(fontFor(0, 80), 13); // not laid out yet: the usual size
  assert.equal(fontFor(660, 0), 13);
});

test('parseCast keeps the timing and caps idle gaps', () => {
  const text = ['{"version":2,"width":80,"height":24,"timestamp":1}', '[0.5,"o","$ "]', '[1.0,"o","uname -a\\r\\n"]', '[31.0,"o","Linux"]', '[31.5,"r","100x30"]', 'garbage', ''].join('\n');
  const { header, events } = parseCast(text);
  assert.equal(header.width, 80);
  assert.deepEqual(events, [
    [0.5, 'o', '$ '],
    [1.0, 'o', 'uname -a\r\n'],
    [3.0, 'o', 'Linux'],
    [3.5, 'r', '100x30'],
  ]);
  assert.throws(() => parseCast('[0,"o","x"]'));
  assert.throws(() => parseCast('{"version":1}'));
});

test('parseSize', () => {
  assert.deepEqual(parseSize('100x30'), { cols: 100, rows: 30 });
  assert.equal(parseSize('100x'), null);
  assert.equal(parseSize('1x1;drop'), null);
});
