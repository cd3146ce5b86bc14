// Reads the golden signaling messages that proto/signal_test.go freezes, so
// the browser code is checked against the exact bytes the Go side produces.

import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join, dirname } from 'node:path';

export const GOLDEN_DIR = join(dirname(fileURLToPath(import.meta.url)), '../../proto/testdata/golden');

/** The text of one golden file, without the trailing newline. */
export function golden(name) {
  return readFileSync(join(GOLDEN_DIR, `${name}.json`), 'utf8').trimEnd();
}

/** Names of all golden files. */
export function goldenNames() {
  return readdirSync(GOLDEN_DIR).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5));
}
