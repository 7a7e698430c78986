import { existsSync } from 'node:fs';
import { cp } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { getCtrvolRunDetail, type CtrvolRunDetail } from './ctrvol-log.js';
import type { Sandbox } from './sandbox.js';

export type VariantName = 'ctrvol' | 'ctrvol-first' | 'recipe' | 'baseline';

export interface RunSample {
  variant: VariantName;
  round: number;
  /** From spawn to exit of the one process the variant is. */
  wallMs: number;
  /** Milliseconds per phase: the shell variants time each command. */
  phases: Record<string, number>;
  ctrvol?: CtrvolRunDetail;
}

export interface RunContext {
  sandbox: Sandbox;
  /** The bench's own copy of dist/ctrvol.cjs, so that a rebuild meanwhile cannot change it. */
  ctrvolBinary: string;
  /**
   * The bench's copy of the V8 code cache that a first ctrvol run leaves in its root's
   * var/cache/ctrvol (agent/embedded.ts); later runs start with it, as every run after the
   * first does on a real node.
   */
  codeCacheDir: string;
  signal: AbortSignal;
}

export interface Variant {
  name: VariantName;
  label: string;
  run(context: RunContext): Promise<VariantRun>;
}

export interface VariantRun {
  sample: Omit<RunSample, 'round'>;
  /** The child's stderr: ctrvol's JSON log, or the shell's phase lines. */
  log: string;
}

// $EPOCHREALTIME is a bash builtin variable, so timing a phase forks nothing; the phase lines go
// to stderr where the bench reads them.
const phaseFunction = [
  'set -euo pipefail',
  'phase() {',
  '  local name=$1 start=$EPOCHREALTIME',
  '  shift',
  '  "$@"',
  `  printf 'phase %s %s %s\\n' "$name" "$start" "$EPOCHREALTIME" >&2`,
  '}',
];

/**
 * The widely shared recipe, for information: stop containerd (nothing runs here, so that is a
 * no-op and left out), mkfs.ext4, move the old contents aside on the root disk, mount, move them
 * back. The move back crosses filesystems, so mv copies and then deletes; nothing syncs, so part
 * of the copy may still be dirty in the page cache when it "finishes".
 */
const recipeScript = [
  ...phaseFunction,
  'dev=$1 mnt=$2 aside=$3',
  'shopt -s dotglob nullglob',
  // -F only so that mkfs never stops to ask; the device is blank anyway.
  'phase mkfs mkfs.ext4 -q -F "$dev"',
  'move_aside() { mkdir "$aside"; mv "$mnt"/* "$aside"/; }',
  'move_back() { mv "$aside"/* "$mnt"/; rmdir "$aside"; }',
  'phase aside move_aside',
  'phase mount mount "$dev" "$mnt"',
  'phase back move_back',
].join('\n');

/**
 * What ctrvol does, by hand: the same mkfs flags, the same staging mount, a plain cp -a, the
 * sync ctrvol needs before it may write its marker, and the same final mount options. It leaves
 * out only what ctrvol adds on top: probing, the space check, the manifest check, state files.
 */
const baselineScript = [
  ...phaseFunction,
  'dev=$1 staging=$2 mnt=$3',
  'phase mkfs mkfs.xfs -f -K -L ctrvol "$dev" >/dev/null',
  'phase mount-staging mount -t xfs "$dev" "$staging"',
  'phase cp cp -a "$mnt/." "$staging"',
  'phase sync sync --file-system "$staging"',
  'phase umount umount "$staging"',
  'phase mount mount -t xfs -o defaults,noatime "$dev" "$mnt"',
].join('\n');

interface Timed {
  wallMs: number;
  spawnedAt: number;
  exitedAt: number;
  stderr: string;
}

async function runTimed(
  label: string,
  file: string,
  args: string[],
  signal: AbortSignal,
): Promise<Timed> {
  const spawnedAt = performance.timeOrigin + performance.now();
  const started = performance.now();
  const result = await execa(file, args, {
    reject: false,
    stdin: 'ignore',
    cancelSignal: signal,
    // A bench run must be reproducible: the same locale for the shell and its children.
    env: { LC_ALL: 'C' },
  });
  const wallMs = performance.now() - started;
  if (result.isCanceled) {
    throw signal.reason;
  }

  if (result.failed) {
    const how =
      result.exitCode === undefined
        ? `ended by ${result.signal ?? result.shortMessage}`
        : `exited ${result.exitCode}`;
    // The message, not the stack: the lines that say what went wrong.
    const lines = String(result.stderr).trim().split('\n');
    const tail = lines
      .filter((line) => !/^\s+at /.test(line))
      .slice(-5)
      .join('\n');
    throw new Error(`${label} ${how}:\n${tail}`);
  }

  return { wallMs, spawnedAt, exitedAt: spawnedAt + wallMs, stderr: String(result.stderr) };
}

function getPhases(stderr: string): Record<string, number> {
  const phases: Record<string, number> = {};
  for (const match of stderr.matchAll(/^phase (\S+) ([\d.]+) ([\d.]+)$/gm)) {
    const [, name, start, end] = match as unknown as [string, string, string, string];
    phases[name] = (Number(end) - Number(start)) * 1000;
  }

  return phases;
}

/**
 * The shipped bundle, as the integration tests run it. --verbose costs a few dozen synchronous
 * log writes and buys the `ran X ms=…` lines that say where the time went.
 */
async function runCtrvol(
  name: 'ctrvol' | 'ctrvol-first',
  { sandbox, ctrvolBinary, signal }: RunContext,
): Promise<VariantRun> {
  const args = ['setup', '--root', sandbox.rig.root, '--log-format', 'json', '--verbose'];
  const timed = await runTimed('ctrvol setup', process.execPath, [ctrvolBinary, ...args], signal);
  const detail = getCtrvolRunDetail(timed.stderr, timed.spawnedAt, timed.exitedAt);
  return {
    sample: { variant: name, wallMs: timed.wallMs, phases: detail.byCommand, ctrvol: detail },
    log: timed.stderr,
  };
}

const cacheIn = (sandbox: Sandbox) => path.join(sandbox.rig.root, 'var/cache/ctrvol');

/** A node's first run: nothing compiled yet. It leaves the code cache the other variant uses. */
export const ctrvolFirstVariant: Variant = {
  name: 'ctrvol-first',
  label: 'ctrvol setup, first run on the machine (spawn → exit)',
  async run(context) {
    const run = await runCtrvol('ctrvol-first', context);
    if (!existsSync(context.codeCacheDir)) {
      await cp(cacheIn(context.sandbox), context.codeCacheDir, { recursive: true });
    }

    return run;
  },
};

/**
 * Any later run on the same machine (a reboot; on a node, `status`, `check` and `verify` too),
 * with the code cache the first run left.
 */
export const ctrvolVariant: Variant = {
  name: 'ctrvol',
  label: 'ctrvol setup, with the code cache of an earlier run',
  async run(context) {
    await cp(context.codeCacheDir, cacheIn(context.sandbox), { recursive: true });
    return runCtrvol('ctrvol', context);
  },
};

export const recipeVariant: Variant = {
  name: 'recipe',
  label: 'recipe: mkfs.ext4, mv aside, mount, mv back',
  async run({ sandbox, signal }) {
    const { rig, aside } = sandbox;
    const args = ['-c', recipeScript, 'recipe', rig.device.path, rig.mountPoint, aside];
    const timed = await runTimed('the recipe', 'bash', args, signal);
    return {
      sample: { variant: 'recipe', wallMs: timed.wallMs, phases: getPhases(timed.stderr) },
      log: timed.stderr,
    };
  },
};

export const baselineVariant: Variant = {
  name: 'baseline',
  label: 'fair baseline: mkfs.xfs -K, staging, cp -a, sync, mount',
  async run({ sandbox, signal }) {
    const { rig, staging } = sandbox;
    const args = ['-c', baselineScript, 'baseline', rig.device.path, staging, rig.mountPoint];
    const timed = await runTimed('the fair baseline', 'bash', args, signal);
    return {
      sample: { variant: 'baseline', wallMs: timed.wallMs, phases: getPhases(timed.stderr) },
      log: timed.stderr,
    };
  },
};

export const variants: readonly Variant[] = [
  ctrvolFirstVariant,
  ctrvolVariant,
  recipeVariant,
  baselineVariant,
];
