import { writeSync } from 'node:fs';
import { parseCommandLine, type ParsedCommand } from './cli/args.js';
import { helpText } from './cli/help.js';
import { useCodeCache } from './code-cache.js';
import { ExitCode, getErrorLine, isCtrvolError, UsageError } from './errors.js';
import type { Logger } from './log/logger.js';
import { getPaths } from './state/paths.js';

type Commands = typeof import('./commands/index.js');
import { version } from './version.js';

/**
 * The entry point, and the only place that ends the process. Commands return their output or
 * throw; errors become one line on stderr and an exit code. Command modules load lazily so that
 * `ctrvol --version` does not pay for the logger, the schema library and the rest.
 */
async function main(argv: readonly string[]): Promise<number> {
  let parsed: ParsedCommand;
  try {
    parsed = parseCommandLine(argv);
  } catch (error) {
    return reportError(error);
  }

  if (parsed.version) {
    print(`ctrvol ${version}\n`);
    return ExitCode.ok;
  }

  if (parsed.help || parsed.command === undefined) {
    print(helpText);
    return parsed.help ? ExitCode.ok : ExitCode.usage;
  }

  const level = getLogLevel(parsed.common.verbose, process.env.CTRVOL_LOG_LEVEL);
  if (level === undefined) {
    return reportError(
      new UsageError(
        `CTRVOL_LOG_LEVEL: got "${process.env.CTRVOL_LOG_LEVEL}"; allowed: ${logLevels.join(' | ')}`,
      ),
    );
  }

  // The daemon compiles once and runs for weeks: its memory counts, not its start-up. A dry run
  // writes nothing at all, the cache included.
  const noCache = parsed.command === 'monitor' || parsed.values['dry-run'] === true;
  useCodeCache(noCache ? undefined : getPaths(parsed.common.root).codeCacheDir);
  const commands = await import('./commands/index.js');
  const logger = commands.createLogger({ format: parsed.common.logFormat, level });
  try {
    const result = await runCommand(commands, parsed, logger);
    print(typeof result === 'string' ? result : result.output);
    return typeof result === 'string' ? ExitCode.ok : result.exitCode;
  } catch (error) {
    logger.debug({ err: error }, 'command failed');
    return reportError(error);
  }
}

/** A command's output; `check` also chooses its exit code (node-problem-detector's table). */
type CommandResult = string | { output: string; exitCode: number };

async function runCommand(
  commands: Commands,
  parsed: ParsedCommand,
  logger: Logger,
): Promise<CommandResult> {
  const { common, values } = parsed;
  switch (parsed.command) {
    case 'setup': {
      return commands.setup(
        common,
        { dryRun: values['dry-run'] === true, verify: values.verify as string | undefined },
        logger,
      );
    }

    case 'status': {
      const report = await commands.getStatus(common);
      return values.json === true
        ? `${JSON.stringify(report, null, 2)}\n`
        : commands.formatStatus(report);
    }

    case 'verify': {
      return commands.verify(common, logger);
    }

    case 'prune': {
      return commands.prune(
        common,
        {
          dryRun: values['dry-run'] === true,
          targetPercent: values['target-percent'] as string | undefined,
        },
        logger,
      );
    }

    case 'monitor':
      return commands.monitor(
        common,
        { once: values.once === true, ticks: values.ticks as string | undefined },
        logger,
      );

    case 'check': {
      const result = await commands.check(common, logger);
      return { output: commands.formatCheck(result), exitCode: result.status };
    }

    default:
      return helpText;
  }
}

const logLevels = ['debug', 'info', 'notice', 'warn', 'error', 'silent'];

/** --verbose wins; CTRVOL_LOG_LEVEL picks any other level; info otherwise. */
function getLogLevel(verbose: boolean, fromEnvironment: string | undefined): string | undefined {
  if (verbose) {
    return 'debug';
  }

  const level = fromEnvironment ?? 'info';
  return logLevels.includes(level) ? level : undefined;
}

function reportError(error: unknown): number {
  print(`ctrvol: ${getErrorLine(error)}\n`, 2);
  return isCtrvolError(error) ? error.exitCode : ExitCode.failed;
}

function print(text: string, fd = 1): void {
  if (text !== '') {
    writeSync(fd, text);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    print(`ctrvol: unexpected error: ${error instanceof Error ? error.stack : String(error)}\n`, 2);
    process.exit(ExitCode.failed);
  },
);
