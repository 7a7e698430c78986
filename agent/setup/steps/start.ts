import type { SetupContext } from '../context.js';
import { act } from '../context.js';
import type { Logger } from '../../log/logger.js';
import { alreadyDone, changed, type Step } from '../step.js';

export const startStep: Step = {
  name: 'start',
  async run(context, logger) {
    if (context.stoppedUnits.length === 0) {
      return alreadyDone('nothing was stopped');
    }

    await startStopped(context, logger);
    return changed(context.stoppedUnits.join(', '));
  },
};

/**
 * Starts what the quiesce step stopped, in reverse order. --no-block matters: containerd now
 * requires ctrvol-setup.service, and a blocking start from inside a user-data run would wait on a
 * unit that in turn waits for this run's lock.
 */
export async function startStopped(context: SetupContext, logger: Logger): Promise<void> {
  for (const unit of [...context.stoppedUnits].reverse()) {
    await act(context, logger, `start ${unit}`, async () => {
      await context.run.run('systemctl', ['start', '--no-block', unit]);
    });
  }
}
