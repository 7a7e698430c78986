import path from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError } from '../errors.js';

/** Options every command takes. */
export interface CommonOptions {
  config: string;
  root: string;
  logFormat: 'text' | 'json';
  verbose: boolean;
}

export interface ParsedCommand {
  command: string | undefined;
  common: CommonOptions;
  values: Record<string, string | boolean | undefined>;
  help: boolean;
  version: boolean;
}

const commonFlags = {
  config: { type: 'string' },
  root: { type: 'string' },
  'log-format': { type: 'string' },
  verbose: { type: 'boolean', short: 'v' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const;

/** Each command's own flags, on top of the common ones. */
export const commandFlags = {
  setup: {
    'dry-run': { type: 'boolean' },
    verify: { type: 'string' },
  },
  status: {
    json: { type: 'boolean' },
  },
  verify: {},
  monitor: {
    once: { type: 'boolean' },
    ticks: { type: 'string' },
  },
  check: {},
  prune: {
    'dry-run': { type: 'boolean' },
    'target-percent': { type: 'string' },
  },
} as const;

export type CommandName = keyof typeof commandFlags;

export function isCommandName(name: string | undefined): name is CommandName {
  return name !== undefined && Object.hasOwn(commandFlags, name);
}

/** Every flag any command takes, to find the command word wherever the options stand. */
const allFlags = Object.assign({}, commonFlags, ...Object.values(commandFlags)) as Record<
  string,
  { type: 'string' | 'boolean'; short?: string }
>;

/** The first argument that is neither an option nor an option's value. */
function findCommand(argv: readonly string[]): string | undefined {
  const { tokens } = parseArgs({
    args: [...argv],
    options: allFlags,
    allowPositionals: true,
    strict: false,
    tokens: true,
  });
  const positional = tokens.find((token) => token.kind === 'positional');
  return positional?.kind === 'positional' ? positional.value : undefined;
}

export function parseCommandLine(argv: readonly string[]): ParsedCommand {
  const first = findCommand(argv);
  if (first !== undefined && !isCommandName(first)) {
    throw new UsageError(`unknown command "${first}"; see ctrvol --help`);
  }

  const options = { ...commonFlags, ...(first === undefined ? {} : commandFlags[first]) };
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
  } catch (error) {
    // Node's own text for an unknown option runs on about positional arguments; the option is
    // what the operator needs to see.
    const unknown = /^Unknown option '([^']+)'/.exec((error as Error).message)?.[1];
    const what =
      unknown === undefined
        ? (error as Error).message
        : `unknown option ${unknown}${first === undefined ? '' : ` for ${first}`}`;
    throw new UsageError(`${what}; see ctrvol --help`, { cause: error });
  }

  const { values, positionals } = parsed;
  if (positionals.length > 1) {
    throw new UsageError(`unexpected argument "${positionals[1]}"; see ctrvol --help`);
  }

  const logFormat = values['log-format'] ?? 'text';
  if (logFormat !== 'text' && logFormat !== 'json') {
    throw new UsageError(`--log-format: got "${logFormat}"; allowed: text | json`);
  }

  const root = values.root ?? '/';
  if (!path.isAbsolute(root)) {
    throw new UsageError(`--root: got "${root}"; allowed: an absolute path`);
  }

  // Checked here with the other usage errors, before any command module is loaded.
  const verify = (values as Record<string, unknown>).verify;
  if (verify !== undefined && verify !== 'metadata' && verify !== 'content') {
    throw new UsageError(`--verify: got "${String(verify)}"; allowed: metadata | content`);
  }

  return {
    command: first,
    common: {
      config: values.config ?? path.join(root, 'etc/ctrvol/config.yaml'),
      root: path.resolve(root),
      logFormat,
      verbose: values.verbose === true,
    },
    values: values as Record<string, string | boolean | undefined>,
    help: values.help === true,
    version: values.version === true,
  };
}
