/**
 * systemd's own tools run against a throwaway root, for the tests of ctrvol's units: what
 * `systemd-analyze verify` says of them, and the stand-in units and binaries such a root needs.
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';

export interface ToolResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** A systemd tool, untranslated and uncoloured, so that its output can be matched. */
export async function runTool(
  file: string,
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<ToolResult> {
  const result = await execa(file, args, {
    reject: false,
    stdin: 'ignore',
    env: { LC_ALL: 'C', SYSTEMD_COLORS: '0', ...env },
  });
  if (result.exitCode === undefined) {
    throw new Error(`${file} did not run: ${result.message}`, { cause: result.cause });
  }

  return {
    exitCode: result.exitCode,
    stdout: String(result.stdout),
    stderr: String(result.stderr),
  };
}

export interface Verdict {
  clean: boolean;
  exitCode: number;
  output: string;
}

/**
 * systemd 252 exits 0 after "Unknown key", "Failed to parse", "path is not absolute" and "Found
 * ordering cycle": it logs them and goes on, as PID 1 does at boot. Only a missing unit or
 * ExecStart binary changes its exit code. So a clean verify is exit 0 with nothing printed.
 */
export async function verify(root: string, units: readonly string[]): Promise<Verdict> {
  const result = await runTool('systemd-analyze', [
    'verify',
    '--man=no',
    '--generators=no',
    `--root=${root}`,
    ...units,
  ]);
  const output = `${result.stdout}${result.stderr}`.trim();
  return { clean: result.exitCode === 0 && output === '', exitCode: result.exitCode, output };
}

export async function writeExecutable(file: string, text: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, text);
  await chmod(file, 0o755);
}

/** A unit that only stands in for one a node has: its ordering lines, and a oneshot to run. */
export function renderStandIn(name: string, unitLines: readonly string[]): string {
  const lines = ['[Unit]', `Description=Stand-in for ${name}`, ...unitLines];
  if (name.endsWith('.service')) {
    lines.push('', '[Service]', 'Type=oneshot', 'ExecStart=/usr/bin/stand-in');
  }

  return `${lines.join('\n')}\n`;
}

/** One directive of a unit file, where it stands, and whether a comment line precedes it. */
export interface Directive {
  file: string;
  line: number;
  section: string;
  key: string;
  value: string;
  commented: boolean;
}

/** Unit-file lines as systemd reads them; ctrvol's units use no line continuations. */
export function parseUnit(file: string, text: string): Directive[] {
  const directives: Directive[] = [];
  let section = '';
  let previous = '';
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line.startsWith('[')) {
      section = line.slice(1, -1);
    } else if (line !== '' && !line.startsWith('#') && !line.startsWith(';')) {
      const equals = line.indexOf('=');
      const key = line.slice(0, equals).trim();
      const value = line.slice(equals + 1).trim();
      directives.push({
        file,
        line: index + 1,
        section,
        key,
        value,
        commented: previous.startsWith('#'),
      });
    }

    previous = line;
  }

  return directives;
}
