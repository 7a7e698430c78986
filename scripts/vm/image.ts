/**
 * The e2e base image: built once by build-base.sh, cached under .cache/vm/ by a hash of every
 * file that goes into it. ctrvol's bundle is not one of them: scenarios install it into their
 * own overlays, so a change to the agent reuses the base.
 *
 *   node --import tsx scripts/vm/image.ts     builds the base now (or says which one is cached)
 */
import { createHash } from 'node:crypto';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const vmDir = path.join(repoRoot, 'scripts', 'vm');
export const cacheDir = path.join(repoRoot, '.cache', 'vm');

/** Everything the base image is made from. A change to any of these builds a new base. */
const BASE_INPUTS = [
  'scripts/vm/build-base.sh',
  'scripts/vm/guest-packages.txt',
  'scripts/vm/bake-images.ts',
  'scripts/vm/guest/pause.c',
  'scripts/vm/guest/containerd-config.toml',
  'scripts/vm/guest/hosts',
  'scripts/vm/guest/e2e-init',
  'scripts/vm/guest/modprobe-e2e.conf',
  'test/helpers/oci-image.ts',
  'test/helpers/tar.ts',
];

export interface BaseImage {
  dir: string;
  key: string;
  qcow2: string;
  kernel: string;
  initrd: string;
  manifest: Record<string, unknown>;
  /** True when this call built it, false when it came from the cache. */
  built: boolean;
  buildSeconds: number;
}

export async function baseKey(): Promise<string> {
  const hash = createHash('sha256');
  for (const input of BASE_INPUTS) {
    hash.update(`${input}\0`);
    hash.update(await readFile(path.join(repoRoot, input)));
    hash.update('\0');
  }
  return hash.digest('hex').slice(0, 16);
}

function imageAt(dir: string, key: string, built: boolean, seconds: number): BaseImage {
  return {
    dir,
    key,
    qcow2: path.join(dir, 'base.qcow2'),
    kernel: path.join(dir, 'vmlinuz'),
    initrd: path.join(dir, 'initrd.img'),
    manifest: {},
    built,
    buildSeconds: seconds,
  };
}

/** Runs a command with its output passed through to ours, for a build that takes minutes. */
function runVisible(command: string, args: string[], log: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let tail = '';
    const onData = (chunk: Buffer): void => {
      const text = chunk.toString();
      tail = (tail + text).slice(-4000);
      for (const line of text.split('\n')) if (line.trim() !== '') log(line);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${command} ${args.join(' ')} exited ${code}:\n${tail}`));
    });
  });
}

/**
 * Returns the cached base image for the current inputs, building it first when there is none.
 * Concurrent callers (test files run in parallel) take turns on a lock file; the second finds
 * the first one's image. Older bases of this cache are removed after a build.
 */
export async function ensureBaseImage(log: (line: string) => void = () => {}): Promise<BaseImage> {
  const key = await baseKey();
  const dir = path.join(cacheDir, `base-${key}`);
  const manifestPath = path.join(dir, 'manifest.json');
  let built = false;
  const started = Date.now();
  if (existsSync(manifestPath) && !(await isUsableBase(dir, manifestPath, log))) {
    await rm(dir, { recursive: true, force: true });
  }

  if (!existsSync(manifestPath)) {
    await mkdir(cacheDir, { recursive: true });
    log(`building base image ${key} (debootstrap trixie; a few minutes)`);
    const script = path.join(vmDir, 'build-base.sh');
    // The check is repeated under the lock: another process may have built it meanwhile.
    await runVisible(
      'flock',
      [
        path.join(cacheDir, 'build.lock'),
        'bash',
        '-c',
        '[[ -e "$1/manifest.json" ]] || exec bash "$2" "$1" "$3"',
        'build',
        dir,
        script,
        key,
      ],
      log,
    );
    built = true;
    await removeOtherBases(dir);
  }
  const image = imageAt(dir, key, built, (Date.now() - started) / 1000);
  image.manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as Record<string, unknown>;
  return image;
}

/**
 * A cached base whose image a disk-full or an interrupted copy damaged would boot into an
 * initramfs shell and fail every scenario at its deadline; it is checked and built again instead.
 */
async function isUsableBase(
  dir: string,
  manifestPath: string,
  log: (line: string) => void,
): Promise<boolean> {
  try {
    JSON.parse(await readFile(manifestPath, 'utf8'));
    await execFileAsync('qemu-img', ['check', '-q', path.join(dir, 'base.qcow2')]);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error('qemu-img is not installed; run scripts/vm/host-deps.sh (as root)', {
        cause: error,
      });
    }

    log(`the cached base ${dir} is damaged (${String(error).split('\n')[0]}); building it again`);
    return false;
  }
}

async function removeOtherBases(keep: string): Promise<void> {
  for (const name of await readdir(cacheDir)) {
    const full = path.join(cacheDir, name);
    // Only finished bases of this cache; a partial one may belong to a build still running.
    if (/^base-[0-9a-f]{16}$/.test(name) && full !== keep) {
      await rm(full, { recursive: true, force: true });
    }
  }
}

/** qemu-img create -b: a copy-on-write overlay whose reads fall through to `backing`. */
export async function createOverlay(backing: string, overlay: string): Promise<void> {
  await rm(overlay, { force: true });
  await execFileAsync('qemu-img', [
    'create',
    '-q',
    '-f',
    'qcow2',
    '-F',
    'qcow2',
    '-b',
    backing,
    overlay,
  ]);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const image = await ensureBaseImage((line) => console.log(line));
  console.log(
    `${image.built ? 'built' : 'cached'} ${image.qcow2} in ${image.buildSeconds.toFixed(0)} s`,
  );
  console.log(JSON.stringify(image.manifest, null, 2));
}
