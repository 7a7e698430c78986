/**
 * The few error classes ctrvol raises. Each carries the exit code the entry point will use, the
 * step it happened in (when there is one) and the original cause, so that nothing is flattened
 * to text before it reaches the operator.
 *
 * Exit codes, documented in the README:
 *   0  ok
 *   1  a step failed while acting (mkfs, copy, mount, verification…)
 *   2  usage or config error: nothing was touched
 *   3  environment: the machine is not in a state ctrvol may act on (device missing, foreign or
 *      in use, not root, a tool missing, containerd still running…): nothing was touched
 */
export const ExitCode = {
  ok: 0,
  failed: 1,
  usage: 2,
  environment: 3,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

interface CtrvolErrorOptions {
  cause?: unknown;
  step?: string;
  /** One sentence telling the operator what to do about it. */
  hint?: string;
}

// The CRI client is compiled from a second bundle embedded in the first (see scripts/build.mjs),
// with its own copy of these classes, so errors are recognised by a registered symbol rather
// than by instanceof.
const brand = Symbol.for('ctrvol.error');

export class CtrvolError extends Error {
  readonly [brand] = true;
  readonly exitCode: ExitCodeValue;
  step: string | undefined;
  readonly hint: string | undefined;

  constructor(message: string, exitCode: ExitCodeValue, options: CtrvolErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.exitCode = exitCode;
    this.step = options.step;
    this.hint = options.hint;
  }
}

/** Bad command line. */
export class UsageError extends CtrvolError {
  constructor(message: string, options?: CtrvolErrorOptions) {
    super(message, ExitCode.usage, options);
  }
}

/** A config value that is not allowed. The message names the key, the value and what is allowed. */
export class ConfigError extends CtrvolError {
  constructor(message: string, options?: CtrvolErrorOptions) {
    super(message, ExitCode.usage, options);
  }
}

/** The machine is not in a state ctrvol may act on. Raised before anything is changed. */
export class EnvironmentError extends CtrvolError {
  constructor(message: string, options?: CtrvolErrorOptions) {
    super(message, ExitCode.environment, options);
  }
}

/** Something ctrvol did failed. */
export class StepError extends CtrvolError {
  constructor(message: string, options?: CtrvolErrorOptions) {
    super(message, ExitCode.failed, options);
  }
}

export function isCtrvolError(error: unknown): error is CtrvolError {
  return typeof error === 'object' && error !== null && brand in error;
}

/** The machine is not in a state to act on: containerd not answering, a device missing… */
export function isEnvironmentError(error: unknown): error is EnvironmentError {
  return isCtrvolError(error) && error.exitCode === ExitCode.environment;
}

/** The one line an operator sees for an error, with the step it failed in. */
export function getErrorLine(error: unknown): string {
  if (isCtrvolError(error)) {
    const where = error.step === undefined ? '' : `${error.step}: `;
    const hint = error.hint === undefined ? '' : ` (${error.hint})`;
    return `${where}${error.message}${hint}`;
  }

  return error instanceof Error ? error.message : String(error);
}
