import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, test } from 'node:test';
import { parseUnitLaunch, splitWords } from '../../scripts/bench/unit-launch.js';

// The monitor benchmark starts the daemon as the unit does; these keep its reading of the unit
// honest, so that a flag added to the unit is a flag the benchmark measures.
describe('the monitor benchmark reads how the unit starts node', () => {
  test('flags before the script, and the environment', () => {
    const launch = parseUnitLaunch(
      [
        '[Service]',
        '# ExecStart=/usr/bin/ctrvol monitor',
        'Environment=NODE_OPTIONS=--max-semi-space-size=1 "MALLOC_ARENA_MAX=2"',
        'ExecStart=/usr/bin/env node --lite-mode --no-expose-wasm /usr/bin/ctrvol monitor',
      ].join('\n'),
    );
    assert.deepEqual(launch, {
      nodeArgs: ['--lite-mode', '--no-expose-wasm'],
      env: { NODE_OPTIONS: '--max-semi-space-size=1', MALLOC_ARENA_MAX: '2' },
    });
  });

  test('the script run by its own #! line takes no flags', () => {
    const launch = parseUnitLaunch('ExecStart=/usr/bin/ctrvol monitor\n');
    assert.deepEqual(launch, { nodeArgs: [], env: {} });
  });

  test('a unit that does not run the monitor under node is refused', () => {
    assert.throws(() => parseUnitLaunch('Type=exec\n'), /no ExecStart/);
    assert.throws(() => parseUnitLaunch('ExecStart=/usr/bin/ctrvol setup\n'), /does not run/);
    assert.throws(
      () => parseUnitLaunch('ExecStart=/usr/bin/python3 /usr/bin/ctrvol monitor\n'),
      /not node/,
    );
  });

  test('quoted words keep their spaces', () => {
    assert.deepEqual(splitWords(`A=1 "B=two words" 'C=x y'`), ['A=1', 'B=two words', 'C=x y']);
  });

  test('the unit in this tree', async () => {
    const unit = await readFile(
      new URL('../../systemd/ctrvol-monitor.service', import.meta.url),
      'utf8',
    );
    const launch = parseUnitLaunch(unit);
    assert.ok(launch.nodeArgs.includes('--lite-mode'), launch.nodeArgs.join(' '));
  });
});
