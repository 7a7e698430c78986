import type { CommonOptions } from '../cli/args.js';
import { loadConfig } from '../config/load.js';
import { createRunner } from '../exec.js';
import { realHost } from '../host/host.js';
import type { Logger } from '../log/logger.js';
import { runDaemon } from '../monitor/daemon.js';
import { runTick } from '../monitor/tick.js';
import { getPaths } from '../state/paths.js';

/** `ctrvol monitor`: ticks on the schedule until SIGTERM; `--once`: one tick, then exit. */
export async function monitor(
  common: CommonOptions,
  options: { once: boolean },
  logger: Logger,
): Promise<string> {
  const config = await loadConfig(common.config);
  const context = {
    config,
    paths: getPaths(common.root),
    host: realHost,
    run: createRunner(logger),
    logger,
  };
  if (options.once) {
    const snapshot = await runTick(context);
    const volume = snapshot.volume === undefined ? 'not mounted' : `${snapshot.volume.percent}%`;
    return `tick ${snapshot.tickSucceeded ? 'ok' : 'had failures'}: root ${snapshot.root.percent}%, volume ${volume}\n`;
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
