import type { CommonOptions } from '../cli/args.js';
import { loadConfig } from '../config/load.js';
import { EnvironmentError, getErrorLine } from '../errors.js';
import { createRunner } from '../exec.js';
import { realHost } from '../host/host.js';
import { isSystemdRunning } from '../host/systemd.js';
import { checkTools, getSetupTools } from '../host/tools.js';
import type { Logger } from '../log/logger.js';
import { lastSetupFile, type LastSetup } from '../monitor/state.js';
import { writeJsonDurably } from '../state/files.js';
import { getPaths } from '../state/paths.js';
import { formatMs } from '../text.js';
import type { SetupContext, VerifyMode } from '../setup/context.js';
import { runSetup } from '../setup/run-setup.js';
import { setupSteps } from '../setup/steps.js';

export interface SetupOptions {
  dryRun: boolean;
  verify: string | undefined;
}

export async function setup(
  common: CommonOptions,
  options: SetupOptions,
  logger: Logger,
): Promise<string> {
  const verify = getVerifyMode(options.verify);
  const config = await loadConfig(common.config);
  if (process.getuid?.() !== 0) {
    throw new EnvironmentError('ctrvol setup must run as root', { hint: 'run it with sudo' });
  }

  checkTools(getSetupTools(config.volume.filesystem));
  const paths = getPaths(common.root);
  const run = createRunner(logger);
  const context: SetupContext = {
    config,
    paths,
    host: realHost,
    run,
    logger,
    dryRun: options.dryRun,
    verify,
    // Under a test root the machine's own services are none of this run's business.
    systemd: common.root === '/' && (await isSystemdRunning()),
    previous: undefined,
    lock: undefined,
    volume: undefined,
    array: undefined,
    stoppedUnits: [],
    sourceSizes: new Map(),
    hiddenBytes: undefined,
    plan: [],
  };

  const summary = await runSetup(context, setupSteps).catch(async (error: unknown) => {
    await recordOutcome(context, { outcome: 'failed', error: getErrorLine(error) });
    throw error;
  });
  await recordOutcome(context, { outcome: 'ok' });
  const { calls, childMs } = run.stats;
  const cpu = process.cpuUsage();
  logger.info(
    {
      changed: summary.changed.length,
      alreadyDone: summary.alreadyDone.length,
      commands: calls,
      commandMs: Math.round(childMs),
      ownMs: Math.round(summary.durationMs - childMs),
      // This process's CPU, start-up included: its own work even where it overlaps a child's.
      cpuMs: Math.round((cpu.user + cpu.system) / 1000),
    },
    summary.changed.length === 0 && !options.dryRun
      ? `setup finished in ${formatMs(summary.durationMs)}: nothing to change, already set up`
      : `setup finished in ${formatMs(summary.durationMs)}`,
  );

  if (options.dryRun) {
    const lines = context.plan.map((line, index) => `  ${index + 1}. ${line}`);
    return lines.length === 0
      ? 'Dry run: nothing to do; the volume is already set up.\n'
      : `Dry run: setup would\n${lines.join('\n')}\n`;
  }

  return '';
}

/** The argument parser has already refused any other value. */
function getVerifyMode(value: string | undefined): VerifyMode {
  return value === 'content' ? 'content' : 'metadata';
}

/** For the monitor's metrics and `ctrvol check`; best effort, and never on a dry run. */
async function recordOutcome(context: SetupContext, outcome: Omit<LastSetup, 'at'>): Promise<void> {
  if (context.dryRun) {
    return;
  }

  await writeJsonDurably(lastSetupFile(context.paths.stateDir), {
    ...outcome,
    at: new Date().toISOString(),
  }).catch((error: unknown) => {
    context.logger.warn({ err: error }, 'could not record how setup ended');
  });
}
