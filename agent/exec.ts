import { EnvironmentError, StepError } from './errors.js';
import type { Logger } from './log/logger.js';

/**
 * The one way ctrvol runs another program. It never goes through a shell, logs the argv at
 * debug, times each call, and on failure puts the command, its exit code and its stderr into
 * the error. It also adds up the time spent in children, so that a run can report its own
 * overhead apart from mkfs, cp and the rest.
 */
export interface RunOptions {
  /** Exit codes that are answers rather than failures, such as blkid's 2 for "nothing found". */
  okExitCodes?: readonly number[];
  timeoutMs?: number;
  /** Text fed to the child's stdin; otherwise stdin is closed so that nothing can stop to ask. */
  input?: string;
  env?: Record<string, string>;
  /** Package that provides the tool, named in the error when it is missing. */
  packageHint?: string;
  /**
   * latin1 maps every byte to one character and back, so file names that are not UTF-8 come
   * through intact (and can be turned back into the same bytes with Buffer.from(name, 'latin1')).
   */
  encoding?: 'utf8' | 'latin1';
  /** For listings of a whole store: more than execa's 100 MB default. */
  maxBuffer?: number;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
  durationMs: number;
}

export interface Runner {
  run(file: string, args: readonly string[], options?: RunOptions): Promise<RunResult>;
  /** Calls made, and the time during which at least one child was running. */
  readonly stats: { calls: number; childMs: number };
}

export function createRunner(logger: Logger): Runner {
  const stats = { calls: 0, childMs: 0 };
  // Children may run side by side (find beside cp); childMs counts the time at least one ran,
  // so that wall time minus childMs is ctrvol's own time and never less.
  let running = 0;
  let busySince = 0;

  async function run(
    file: string,
    args: readonly string[],
    options: RunOptions = {},
  ): Promise<RunResult> {
    // Loaded on first use: the monitor runs a program only to grow a grown volume, and execa
    // with its dependencies, initialised at start, stayed in its heap for good (1 MiB of its
    // resident memory, measured after 100 ticks).
    const { execa } = await import('execa');
    const command = [file, ...args].join(' ');
    logger.debug({ argv: [file, ...args] }, 'running');
    const started = performance.now();
    if (running === 0) {
      busySince = started;
    }

    running += 1;
    const result = await execa(file, args, {
      reject: false,
      stripFinalNewline: false,
      ...(options.input === undefined ? { stdin: 'ignore' } : { input: options.input }),
      timeout: options.timeoutMs,
      encoding: options.encoding ?? 'utf8',
      maxBuffer: options.maxBuffer ?? 100_000_000,
      env: { LC_ALL: 'C', ...options.env },
    });
    const ended = performance.now();
    const durationMs = ended - started;
    stats.calls += 1;
    running -= 1;
    if (running === 0) {
      stats.childMs += ended - busySince;
    }

    if (result.failed && result.exitCode === undefined) {
      const cause = result.cause as NodeJS.ErrnoException | undefined;
      if (cause?.code === 'ENOENT') {
        const from = options.packageHint === undefined ? '' : ` (install ${options.packageHint})`;
        throw new EnvironmentError(`required tool not found: ${file}${from}`, { cause });
      }

      const why = result.timedOut
        ? `timed out after ${options.timeoutMs} ms`
        : clip(result.shortMessage ?? result.message ?? 'failed');
      throw new StepError(`${clip(command)}: ${why}`, { cause: result });
    }

    const exitCode = result.exitCode ?? 0;
    logger.debug({ exitCode, ms: Math.round(durationMs) }, `ran ${file}`);
    if (exitCode !== 0 && !(options.okExitCodes ?? []).includes(exitCode)) {
      const stderr = clip(String(result.stderr).trim().split('\n').slice(-3).join(' / '));
      throw new StepError(`${clip(command)} exited ${exitCode}${stderr ? `: ${stderr}` : ''}`, {
        cause: result,
      });
    }

    return {
      stdout: String(result.stdout),
      stderr: String(result.stderr),
      exitCode,
      durationMs,
    };
  }

  return { run, stats };
}

/** Error lines stay lines: a cp of a path near PATH_MAX can say several kilobytes. */
function clip(text: string, limit = 400): string {
  return text.length <= limit ? text : `${text.slice(0, limit)}…`;
}
