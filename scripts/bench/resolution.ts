/**
 * Selector resolution on the 28-volume fixture, for issue 5's target (≤ 30 ms a poll): each poll
 * reads the whole inventory (sysfs, /dev links, Identify data) and resolves one selector, as the
 * wait for a late device does every half second. Every mapping name (bare and with /dev/), every
 * volume id and one path are resolved in turn, on a fixture tree built here and removed after.
 */
import { benchmarkResolution } from '../../test/unit/fixtures/shapes/benchmark.js';

const targetMs = 30;
const result = await benchmarkResolution({ iterations: 20 });
const line = (label: string, stats: { median: number; p95: number; max: number }) =>
  `  ${label.padEnd(28)}${`${stats.median.toFixed(2)} ms`.padStart(10)}` +
  `${`${stats.p95.toFixed(2)} ms`.padStart(10)}${`${stats.max.toFixed(2)} ms`.padStart(10)}`;

console.log(
  `\nselector resolution: ${result.devices} devices, ${result.selectors} selectors, ` +
    `${result.iterations} rounds`,
);
console.log(`  ${''.padEnd(28)}${'median'.padStart(10)}${'p95'.padStart(10)}${'max'.padStart(10)}`);
console.log(line('read the inventory', result.inventoryMs));
console.log(line('resolve one selector', result.resolveMs));
console.log(line('one poll (both)', result.pollMs));
const met = result.pollMs.median <= targetMs ? 'met' : 'MISSED';
console.log(`\n  poll median ${result.pollMs.median} ms, target ≤ ${targetMs} ms: ${met}`);
