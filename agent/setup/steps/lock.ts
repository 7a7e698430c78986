import { acquireLock } from '../../host/lock.js';
import { checked, type Step } from '../step.js';

// Long enough for another run to finish a copy of the AMI's store, short of the unit's timeout.
const lockWaitMs = 10 * 60 * 1000;

export const lockStep: Step = {
  name: 'lock',
  async run(context, logger) {
    if (context.dryRun) {
      return checked('not taken for a dry run, which changes nothing');
    }

    context.lock = await acquireLock(context.paths.lockFile, {
      procDir: context.host.proc,
      waitMs: lockWaitMs,
      onWait: (owner) => logger.info({ pid: owner.pid }, 'waiting for another ctrvol run'),
      onStale: (owner) => logger.warn({ pid: owner.pid }, 'taking over a lock left by a dead run'),
    });

    return checked(`holding ${context.paths.lockFile}`);
  },
};
