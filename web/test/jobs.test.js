import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatBytes, formatDuration, filterQuery } from '../app/jobs.js';

test('formatBytes', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(5 * 1024 * 1024), '5.0 MiB');
});

test('formatDuration', () => {
  assert.equal(formatDuration(0), '0s');
  assert.equal(formatDuration(95_000), '1m 35s');
  assert.equal(formatDuration(30 * 60_000), '30m 0s');
  assert.equal(formatDuration(2 * 3600_000 + 60_000), '2h 1m');
});

test('filterQuery drops empty filters and encodes the rest', () => {
  assert.equal(filterQuery({ user: '', device: '' }), '');
  assert.equal(filterQuery({ user: 'tech', device: 'printer 1', reason: '' }), '?user=tech&device=printer+1');
});
