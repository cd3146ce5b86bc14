// The browser's header lists against the Go side's (proto/headers.go, frozen
// in proto/testdata/header-rules.json by TestHeaderRulesGolden): a list
// changed on one side only fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join, dirname } from 'node:path';

import { HOP_BY_HOP, RESPONSE_DROP } from '../session/headers.js';

const rules = JSON.parse(readFileSync(
  join(dirname(fileURLToPath(import.meta.url)), '../../proto/testdata/header-rules.json'), 'utf8'));
const lower = (list) => list.map((h) => h.toLowerCase()).sort();

test('hop-by-hop fields are the same list as the tunnel\'s', () => {
  assert.deepEqual([...HOP_BY_HOP].sort(), lower(rules.hopByHop));
});

test('the page never sees a response field the agent drops', () => {
  for (const h of lower(rules.droppedDeviceResponse)) {
    assert.ok(RESPONSE_DROP.has(h), `${h} is dropped by the agent but not by the worker`);
  }
});
