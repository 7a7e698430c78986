import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { schedule, setLogger } from 'node-cron';
import type { Logger } from '../log/logger.js';
import { closeTickContext, runTick, type TickContext } from './tick.js';

// systemd's default stop timeout is 90 s, but a monitor that takes more than a second to stop
// holds up every shutdown and package upgrade; a tick cut short is simply done again next time.
const stopWaitMs = 800;

/**
 * Runs a tick at start and then on the cron schedule until the signal aborts. Ticks never
 * overlap: node-cron skips a scheduled run while one is busy, and the first tick goes through
 * the same guard. A tick's own failures are logged by the tick; anything it throws is logged
 * here, and the daemon carries on.
 */
export async function runDaemon(context: TickContext, signal: AbortSignal): Promise<void> {
  const { logger } = context;
  let running: Promise<void> | undefined;
  const tick = () => {
    if (running !== undefined) {
      logger.warn('a tick is still running; skipping this one');
      return running;
    }

    const started = performance.now();
    running = runTick(context)
      .then((snapshot) => {
        logger.debug(
          { ms: Math.round(performance.now() - started), ok: snapshot.tickSucceeded },
          'tick done',
        );
      })
      .catch((error: unknown) => logger.error({ err: error }, 'tick failed'))
      .finally(() => {
        running = undefined;
      });
    return running;
  };

  setLogger(cronLogger(logger));
  const task = schedule(context.config.monitor.schedule, tick, {
    name: 'ctrvol-monitor',
    noOverlap: true,
  });
  logger.info({ schedule: context.config.monitor.schedule }, 'monitor started');
  void tick();

  if (!signal.aborted) {
    await once(signal, 'abort');
  }

  await task.stop();
  await task.destroy();
  if (running !== undefined) {
    await Promise.race([running, sleep(stopWaitMs)]);
  }

  closeTickContext(context);
  logger.info('monitor stopped');
}

/** node-cron writes to the console by default; its few messages go to our log instead. */
function cronLogger(logger: Logger) {
  return {
    info: (message: string) => logger.debug(`cron: ${message}`),
    warn: (message: string) => logger.debug(`cron: ${message}`),
    error: (message: string | Error) => logger.error({ err: message }, 'cron error'),
    debug: (message: string | Error) => logger.debug({ detail: String(message) }, 'cron'),
  };
}
