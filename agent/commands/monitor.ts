import type { CommonOptions } from '../cli/args.js';
import { loadConfig } from '../config/load.js';
import { UsageError } from '../errors.js';
import { createRunner } from '../exec.js';
import { realHost } from '../host/host.js';
import type { Logger } from '../log/logger.js';
import { runDaemon } from '../monitor/daemon.js';
import type { MonitorSnapshot } from '../monitor/snapshot.js';
import { closeTickContext, runTick, type TickContext } from '../monitor/tick.js';
import { getPaths } from '../state/paths.js';

export interface MonitorOptions {
  once: boolean;
  /** Ticks back to back, then a summary of CPU and memory: for benchmarks and debugging. */
  ticks: string | undefined;
}

/** `ctrvol monitor`: ticks on the schedule until SIGTERM; `--once`: one tick, then exit. */
export async function monitor(
  common: CommonOptions,
  options: MonitorOptions,
  logger: Logger,
): Promise<string> {
  const ticks = getTickCount(options);
  const config = await loadConfig(common.config);
  const context: TickContext = {
    config,
    paths: getPaths(common.root),
    host: realHost,
    run: createRunner(logger),
    logger,
  };
  if (ticks !== undefined) {
    try {
      return await runTicks(context, ticks);
    } finally {
      closeTickContext(context);
    }
  }

  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  try {
    await runDaemon(context, stop.signal);
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }

  return '';
}

function getTickCount(options: MonitorOptions): number | undefined {
  if (options.ticks === undefined) {
    return options.once ? 1 : undefined;
  }

  const count = Number(options.ticks);
  if (!Number.isInteger(count) || count < 1 || count > 100_000) {
    throw new UsageError(`--ticks: got "${options.ticks}"; allowed: a whole number from 1`);
  }

  return count;
}

/** Runs ticks one after another; with more than one, reports what they cost this process. */
async function runTicks(context: TickContext, count: number): Promise<string> {
  const cpuMs: number[] = [];
  let last: MonitorSnapshot | undefined;
  for (let index = 0; index < count; index += 1) {
    const before = process.cpuUsage();
    last = await runTick(context);
    const used = process.cpuUsage(before);
    cpuMs.push((used.user + used.system) / 1000);
  }

  const snapshot = last as MonitorSnapshot;
  const volume = snapshot.volume === undefined ? 'not mounted' : `${snapshot.volume.percent}%`;
  const outcome = snapshot.tickSucceeded ? 'ok' : 'had failures';
  const line = `tick ${outcome}: root ${snapshot.root.percent}%, volume ${volume}\n`;
  if (count === 1) {
    return line;
  }

  const sorted = [...cpuMs].sort((a, b) => a - b);
  const summary = {
    ticks: count,
    cpuMsPerTickMedian: round(sorted[Math.floor(sorted.length / 2)] ?? 0),
    cpuMsPerTickMax: round(sorted.at(-1) ?? 0),
    rssBytes: process.memoryUsage.rss(),
  };
  return `${line}${JSON.stringify(summary)}\n`;
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
