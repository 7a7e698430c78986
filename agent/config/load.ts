import { constants, type Stats } from 'node:fs';
import { type FileHandle, open, stat } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import type * as z from 'zod/mini';
import { ConfigError, EnvironmentError } from '../errors.js';
import { type Config, configSchema } from './schema.js';

export const defaultConfigPath = '/etc/ctrvol/config.yaml';

// A config is a few hundred bytes; anything near this is not one, and is not read whole.
export const maxConfigBytes = 1024 * 1024;

/** Reads and validates the config file. Any problem becomes one ConfigError line. */
export async function loadConfig(file: string): Promise<Config> {
  // stat before open: opening a device node can act on it (a watchdog starts counting, a tape
  // rewinds), so one named as the config is refused without being opened.
  checkConfigFile(file, await stat(file).catch((error: unknown) => failToRead(file, error)));
  // O_NONBLOCK: a FIFO swapped in since the stat must not hold the open until a writer comes.
  // O_NOCTTY: nor may a terminal become this process's controlling one.
  const handle = await open(
    file,
    constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY,
  ).catch((error: unknown) => failToRead(file, error));
  let data: Buffer;
  try {
    // fstat: what was opened is what counts, whatever the path names now.
    checkConfigFile(file, await handle.stat());
    // One byte over the cap tells a file that grew since the fstat, without reading it whole.
    data = await readAtMost(handle, maxConfigBytes + 1).catch((error: unknown) =>
      failToRead(file, error),
    );
  } finally {
    await handle.close();
  }

  if (data.length > maxConfigBytes) {
    throw tooLarge(file);
  }

  const text = data.toString('utf8');
  return parseConfig(text, file);
}

async function readAtMost(handle: FileHandle, limit: number): Promise<Buffer> {
  // Unzeroed: only the bytes read are ever looked at.
  const buffer = Buffer.allocUnsafe(limit);
  let length = 0;
  let bytesRead: number;
  do {
    ({ bytesRead } = await handle.read(buffer, length, limit - length, null));
    length += bytesRead;
  } while (bytesRead > 0 && length < limit);

  return buffer.subarray(0, length);
}

function checkConfigFile(file: string, stats: Stats): void {
  if (stats.isDirectory()) {
    throw new ConfigError(`config ${file}: a directory; pass --config FILE`);
  }

  if (!stats.isFile()) {
    throw new ConfigError(`config ${file}: not a regular file; pass --config FILE`);
  }

  if (stats.size > maxConfigBytes) {
    throw tooLarge(file);
  }
}

function tooLarge(file: string): ConfigError {
  return new ConfigError(`config ${file}: larger than ${maxConfigBytes} bytes; not a config`);
}

function failToRead(file: string, error: unknown): never {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') {
    throw new ConfigError(`config ${file}: no such file; pass --config FILE`, { cause: error });
  }

  // There is a config, but this process may not read it (not root, say).
  throw new EnvironmentError(`config ${file}: ${(error as Error).message}`, { cause: error });
}

export function parseConfig(text: string, source = 'config'): Config {
  const document = parseDocument(text, { prettyErrors: true });
  const syntaxError = document.errors[0];
  if (syntaxError !== undefined) {
    const line = syntaxError.linePos?.[0].line;
    const where = line === undefined ? '' : ` line ${line}`;
    const what = syntaxError.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '');
    throw new ConfigError(`${source}${where}: not valid YAML: ${what}`);
  }

  let raw: unknown;
  try {
    raw = document.toJS() ?? {};
  } catch (error) {
    // yaml refuses alias expansions that would blow up memory ("billion laughs").
    throw new ConfigError(`${source}: not a usable YAML document: ${(error as Error).message}`);
  }

  const result = configSchema.safeParse(raw);
  if (!result.success) {
    throw new ConfigError(getIssueLine(result.error.issues, raw, source));
  }

  return result.data;
}

/** `volume.filesystem: got "btrfs"; allowed: "xfs" | "ext4"`, for the first problem found. */
function getIssueLine(issues: z.core.$ZodIssue[], raw: unknown, source: string): string {
  const issue = issues[0];
  if (issue === undefined) {
    return `${source}: invalid`;
  }

  const key = issue.path.map(String).join('.') || '(top level)';
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
  if (issue.code === 'unrecognized_keys') {
    const where = key === '(top level)' ? '' : `${key}.`;
    const known = getKnownKeys(issue.path);
    const allowed = known === undefined ? '' : `; allowed here: ${known.join(', ')}`;
    return `${source}: ${where}${issue.keys.join(', ')}: unknown key${allowed}${more}`;
  }

  // A record's key failed its own check: the key is what to show, not the value under it.
  if (issue.code === 'invalid_key') {
    const badKey = String(issue.path.at(-1));
    const parent = issue.path.slice(0, -1).map(String).join('.');
    const inner = issue.issues[0];
    const allowed = inner === undefined ? issue.message : getAllowed(inner);
    return `${source}: ${parent}: got the key ${JSON.stringify(badKey)}; allowed: ${allowed}${more}`;
  }

  // A cross-field check can fail on a value the file left to its default; say so.
  const given = getAt(raw, issue.path);
  const input = (issue as { params?: { input?: unknown } }).params?.input;
  const got =
    given !== undefined
      ? showValue(given)
      : input !== undefined
        ? `${showValue(input)} (the default)`
        : 'nothing';

  return `${source}: ${key}: got ${got}; allowed: ${getAllowed(issue)}${more}`;
}

/** What getKnownKeys reads of a zod schema: an object's shape, or the schema a default wraps. */
interface SchemaNode {
  _zod: { def: { shape?: Record<string, SchemaNode>; innerType?: SchemaNode } };
}

function unwrap(schema: SchemaNode | undefined): SchemaNode | undefined {
  let current = schema;
  while (current?._zod.def.innerType !== undefined) {
    current = current._zod.def.innerType;
  }

  return current;
}

/** The keys the schema knows at a path of nested objects, for an unknown-key message. */
function getKnownKeys(keys: readonly PropertyKey[]): string[] | undefined {
  let schema = unwrap(configSchema as unknown as SchemaNode);
  for (const key of keys) {
    schema = unwrap(schema?._zod.def.shape?.[String(key)]);
  }

  const shape = schema?._zod.def.shape;
  return shape === undefined ? undefined : Object.keys(shape);
}

const typeNames: Record<string, string> = {
  int: 'a whole number',
  number: 'a number',
  object: 'a mapping of keys',
  array: 'a list',
  boolean: 'true or false',
  string: 'a string',
};

function getAllowed(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_value':
      return issue.values.map((value) => JSON.stringify(value)).join(' | ');
    case 'invalid_type':
      return typeNames[issue.expected] ?? `a ${issue.expected}`;
    case 'too_small':
      return issue.origin === 'array'
        ? `a list of at least ${issue.minimum} item(s)`
        : `a value of at least ${issue.minimum}`;
    case 'too_big':
      return `a value of at most ${issue.maximum}`;
    default:
      return issue.message;
  }
}

// Enough of a value to recognise it; a 100,000-character path would drown the message.
const maxShownCharacters = 120;

/**
 * JSON for most values, but numbers JSON cannot show (.inf, .nan in YAML) as themselves. The
 * message must stay one line: JSON escapes C0 controls, and DEL, the C1 controls and the Unicode
 * line and paragraph separators are escaped here too. A long string is cut, with its length said.
 */
function showValue(value: unknown): string {
  if (typeof value === 'number' && !Number.isFinite(value)) {
    return String(value);
  }

  const long = typeof value === 'string' && value.length > maxShownCharacters;
  const shown = (
    JSON.stringify(long ? value.slice(0, maxShownCharacters) : value) ?? 'nothing'
  ).replace(
    /[\u007f-\u009f\u2028\u2029]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  return long ? `${shown}… (${value.length} characters)` : shown;
}

function getAt(value: unknown, keys: readonly PropertyKey[]): unknown {
  let current = value;
  for (const key of keys) {
    if (current === null || typeof current !== 'object') {
      return undefined;
    }

    current = (current as Record<PropertyKey, unknown>)[key];
  }

  return current;
}
