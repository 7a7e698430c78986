import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { createLoopDevice, type LoopDevice } from '../helpers/loop.js';
import { makeTempDir } from '../helpers/temp.js';

/** The built single-file agent: integration tests run the artifact that ships, not the sources. */
export const ctrvolBinary = path.resolve('dist/ctrvol.cjs');

export interface Rig {
  dir: string;
  /** --root for every run: state, lock, staging and drop-ins go below it. */
  root: string;
  /** The containerd store on the "root disk": a plain directory of the test's own. */
  mountPoint: string;
  device: LoopDevice;
  configFile: string;
  /**
   * Cleanup that must run before the rig's own: a containerd on the volume has to stop before
   * the volume can be unmounted. Runs newest first.
   */
  defer(cleanup: () => Promise<unknown>): void;
  writeConfig(yaml: string): Promise<void>;
  setup(...args: string[]): Promise<CtrvolResult>;
  /** Starts a setup run without waiting, for kill -9 tests. */
  spawnSetup(env?: Record<string, string>): ResultPromise;
  ctrvol(...args: string[]): Promise<CtrvolResult>;
}

export interface CtrvolResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface RigOptions {
  sizeBytes?: number;
  filesystem?: 'xfs' | 'ext4';
  /** Extra config lines under `volume:`. */
  volumeYaml?: string;
}

/**
 * A throwaway machine for one test: a loop device over a sparse file, a mount point and a root
 * in a temporary directory, and a config naming only those. Cleanup unmounts, detaches and
 * deletes all of it.
 */
export async function makeRig(
  t: { after(fn: () => Promise<void>): void },
  options: RigOptions = {},
): Promise<Rig> {
  const temp = await makeTempDir('ctrvol-it');
  const device = await createLoopDevice({
    sizeBytes: options.sizeBytes ?? 512 * 1024 * 1024,
    dir: temp.path,
  }).catch(async (error: unknown) => {
    await temp.cleanup();
    throw error;
  });
  // node:test runs after-hooks in the order they were added, so the rig keeps its own stack:
  // the test's cleanups newest first, then the device (it unmounts its own mounts), then the
  // directory with anything left in it.
  const deferred: (() => Promise<unknown>)[] = [];
  t.after(async () => {
    for (const cleanup of deferred.reverse()) {
      await cleanup();
    }

    await device.detach();
    await temp.cleanup();
  });

  const root = path.join(temp.path, 'root');
  const mountPoint = path.join(temp.path, 'containerd');
  const configFile = path.join(root, 'etc/ctrvol/config.yaml');
  await mkdir(path.dirname(configFile), { recursive: true });
  await mkdir(mountPoint, { recursive: true });

  const run = async (args: string[]): Promise<CtrvolResult> => {
    const result = await execa('node', [ctrvolBinary, ...args], { reject: false, stdin: 'ignore' });
    return {
      exitCode: result.exitCode ?? -1,
      stdout: String(result.stdout),
      stderr: String(result.stderr),
    };
  };

  const rig: Rig = {
    dir: temp.path,
    root,
    mountPoint,
    device,
    configFile,
    defer: (cleanup) => deferred.push(cleanup),
    writeConfig: (yaml) => writeFile(configFile, yaml),
    setup: (...args) => run(['setup', '--root', root, ...args]),
    spawnSetup: (env) =>
      execa('node', [ctrvolBinary, 'setup', '--root', root], {
        reject: false,
        stdin: 'ignore',
        env: env ?? {},
        detached: true,
      }),
    ctrvol: (...args) => run([...args, '--root', root]),
  };
  await rig.writeConfig(
    [
      'volume:',
      `  device: ${device.path}`,
      `  filesystem: ${options.filesystem ?? 'xfs'}`,
      `  mountPoint: ${mountPoint}`,
      '  waitSeconds: 0',
      ...(options.volumeYaml === undefined ? [] : [options.volumeYaml]),
      'containerd:',
      `  socket: ${path.join(temp.path, 'no-containerd.sock')}`,
      '',
    ].join('\n'),
  );

  return rig;
}

/** What blkid says is on a device, probing it directly. */
export async function probe(devicePath: string): Promise<Record<string, string>> {
  const result = await execa('blkid', ['-p', '-o', 'export', devicePath], { reject: false });
  return Object.fromEntries(
    String(result.stdout)
      .split('\n')
      .filter((line) => line.includes('='))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
}

/** The source of the mount at a path, from the kernel's own table. */
export async function mountedAt(dir: string): Promise<string | undefined> {
  const result = await execa(
    'findmnt',
    ['--noheadings', '--output', 'SOURCE', '--mountpoint', dir],
    {
      reject: false,
    },
  );
  const lines = String(result.stdout).trim().split('\n');
  return result.exitCode === 0 ? lines[lines.length - 1] : undefined;
}
