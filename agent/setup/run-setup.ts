import { isCtrvolError, StepError } from '../errors.js';
import { formatMs } from '../text.js';
import type { SetupContext } from './context.js';
import { startStopped } from './steps/start.js';
import type { Step } from './step.js';

export interface SetupSummary {
  changed: string[];
  alreadyDone: string[];
  durationMs: number;
}

/**
 * Runs the steps in order. Every step logs started, then finished with its duration, already
 * done, or failed. A failure names its step and keeps its cause.
 */
export async function runSetup(
  context: SetupContext,
  steps: readonly Step[],
): Promise<SetupSummary> {
  const summary: SetupSummary = { changed: [], alreadyDone: [], durationMs: 0 };
  const started = performance.now();
  try {
    for (const step of steps) {
      await runStep(context, step, summary);
    }
  } catch (error) {
    await recoverFromFailure(context);
    throw error;
  } finally {
    await context.lock?.release();
    summary.durationMs = performance.now() - started;
  }

  return summary;
}

async function runStep(context: SetupContext, step: Step, summary: SetupSummary): Promise<void> {
  const logger = context.logger.child({ step: step.name });
  const started = performance.now();
  logger.info('started');
  try {
    const planned = context.plan.length;
    const outcome = await step.run(context, logger);
    const took = formatMs(performance.now() - started);
    const detail = outcome.detail === undefined ? '' : `: ${outcome.detail}`;
    if (outcome.status === 'already done') {
      summary.alreadyDone.push(step.name);
      logger.info(`already done${detail}`);
    } else if (context.plan.length > planned) {
      logger.info(`planned in ${took}`);
    } else {
      if (outcome.status === 'changed') {
        summary.changed.push(step.name);
      }

      logger.info(`finished in ${took}${detail}`);
    }
  } catch (error) {
    const failure = isCtrvolError(error) ? error : new StepError(String(error), { cause: error });
    failure.step ??= step.name;
    logger.error(`failed after ${formatMs(performance.now() - started)}: ${failure.message}`);
    throw failure;
  }
}

/**
 * A failed run leaves the services as onFailure says. With `rootDisk` whatever was stopped is
 * started again (on the root disk, since the volume did not get mounted); with `block` it stays
 * down, as containerd's drop-in would keep it at boot.
 */
async function recoverFromFailure(context: SetupContext): Promise<void> {
  if (context.stoppedUnits.length === 0) {
    return;
  }

  const logger = context.logger.child({ step: 'recover' });
  if (context.config.onFailure === 'block') {
    logger.error(`left ${context.stoppedUnits.join(', ')} stopped (onFailure: block)`);
    return;
  }

  await startStopped(context, logger).catch((error: unknown) => {
    logger.error({ err: error }, 'could not start the stopped units again');
  });
}
