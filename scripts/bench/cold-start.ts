import { spawnSync } from 'node:child_process';
import { getSummary, type Summary } from './stats.js';

export interface ColdStartResult {
  ctrvol: Summary;
  node: Summary;
  /** Median of ctrvol --version over median of node -e 0. */
  ratio: number;
  ctrvolMs: number[];
  nodeMs: number[];
}

// spawnSync blocks the bench's event loop for the child's whole life, so nothing in this process
// competes with the child being timed.
function timeOnce(args: readonly string[]): number {
  const started = performance.now();
  const result = spawnSync(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const ms = performance.now() - started;
  if (result.status !== 0) {
    throw new Error(`node ${args.join(' ')} exited ${result.status}: ${String(result.stderr)}`);
  }

  return ms;
}

/**
 * `ctrvol --version` against a bare `node -e 0`, alternating so that a noisy moment hits both,
 * after a few untimed runs of each so that both start from a warm page cache.
 */
export function measureColdStart(ctrvolBinary: string, runs: number, warmup = 3): ColdStartResult {
  const commands = { ctrvol: [ctrvolBinary, '--version'], node: ['-e', '0'] };
  for (let index = 0; index < warmup; index += 1) {
    timeOnce(commands.ctrvol);
    timeOnce(commands.node);
  }

  const ctrvolMs: number[] = [];
  const nodeMs: number[] = [];
  for (let index = 0; index < runs; index += 1) {
    // Who goes first alternates too, in case the second of a pair is systematically luckier.
    if (index % 2 === 0) {
      ctrvolMs.push(timeOnce(commands.ctrvol));
      nodeMs.push(timeOnce(commands.node));
    } else {
      nodeMs.push(timeOnce(commands.node));
      ctrvolMs.push(timeOnce(commands.ctrvol));
    }
  }

  const ctrvol = getSummary(ctrvolMs);
  const node = getSummary(nodeMs);
  return { ctrvol, node, ratio: ctrvol.median / node.median, ctrvolMs, nodeMs };
}
