/**
 * How ctrvol-monitor.service starts the monitor, read from the unit file itself, so that the
 * benchmark measures the daemon with exactly the V8 flags and environment systemd gives it and
 * cannot drift from the unit.
 */
export interface UnitLaunch {
  /** Flags given to node before the script (ExecStart=/usr/bin/env node FLAGS /usr/bin/ctrvol). */
  nodeArgs: string[];
  /** The unit's Environment= assignments: NODE_OPTIONS, malloc tunables. */
  env: Record<string, string>;
}

const script = '/usr/bin/ctrvol';

/** Splits a unit-file value as systemd does for Environment= and ExecStart=, quotes included. */
export function splitWords(value: string): string[] {
  const words: string[] = [];
  for (const match of value.matchAll(/"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g)) {
    words.push(match[1]?.replace(/\\(.)/g, '$1') ?? match[2] ?? match[3] ?? '');
  }

  return words;
}

export function parseUnitLaunch(text: string): UnitLaunch {
  const env: Record<string, string> = {};
  let exec: string[] | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const equals = line.indexOf('=');
    if (line.startsWith('#') || equals < 0) {
      continue;
    }

    const [key, value] = [line.slice(0, equals).trim(), line.slice(equals + 1).trim()];
    if (key === 'Environment') {
      for (const word of splitWords(value)) {
        const at = word.indexOf('=');
        env[word.slice(0, at)] = word.slice(at + 1);
      }
    } else if (key === 'ExecStart') {
      exec = splitWords(value);
    }
  }

  if (exec === undefined) {
    throw new Error('the unit has no ExecStart=');
  }

  const at = exec.indexOf(script);
  if (at < 0 || exec[at + 1] !== 'monitor') {
    throw new Error(`ExecStart= does not run ${script} monitor: ${exec.join(' ')}`);
  }

  // Either the script itself (its #!/usr/bin/env node line) or node, found the same way, with
  // flags before the script.
  const launcher = exec.slice(0, at);
  const node = launcher[0] === '/usr/bin/env' ? launcher.slice(1) : launcher;
  if (node.length > 0 && node[0] !== 'node') {
    throw new Error(`ExecStart= runs ${script} with ${launcher.join(' ')}, not node`);
  }

  return { nodeArgs: node.slice(1), env };
}
