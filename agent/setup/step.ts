import type { Logger } from '../log/logger.js';
import type { SetupContext } from './context.js';

/**
 * One boot step. `run` probes, decides and acts, and says which of these it did:
 *   changed       it changed the machine
 *   already done  the machine was already as it should be
 *   checked       it only looked (lock, resolve): nothing to change, nothing to skip
 * A dry run's changes are recorded in the plan instead of made.
 */
export interface Step {
  name: string;
  run(context: SetupContext, logger: Logger): Promise<StepOutcome>;
}

export interface StepOutcome {
  status: 'changed' | 'already done' | 'checked';
  detail: string | undefined;
}

export const changed = (detail?: string): StepOutcome => ({ status: 'changed', detail });

export const alreadyDone = (detail: string): StepOutcome => ({ status: 'already done', detail });

export const checked = (detail: string): StepOutcome => ({ status: 'checked', detail });
