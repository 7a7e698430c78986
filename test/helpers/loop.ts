import { readdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { readMounts } from './mounts.js';

export interface LoopDevice {
  /** The device path exactly as `losetup --show` printed it, e.g. /dev/loop3. */
  path: string;
  backingFile: string;
  detach(): Promise<void>;
}

export interface CreateLoopDeviceOptions {
  sizeBytes: number;
  /** Directory for the sparse backing file; one the test created. */
  dir: string;
  /** Backing file name inside `dir`. */
  name?: string;
}

const LOOP_PATH = /^\/dev\/loop\d+$/;

/** `major:minor` of the device and of any partitions on it, as mountinfo prints them. */
async function deviceNumbers(devicePath: string): Promise<Set<string>> {
  const name = path.basename(devicePath);
  const sysDir = `/sys/class/block/${name}`;
  const numbers = new Set<string>();
  numbers.add((await readFile(`${sysDir}/dev`, 'utf8')).trim());
  // Partition entries (loop3p1…) appear below the disk only when the loop was set up with -P.
  for (const entry of await readdir(sysDir).catch(() => [])) {
    if (!entry.startsWith(`${name}p`)) continue;
    numbers.add((await readFile(`${sysDir}/${entry}/dev`, 'utf8')).trim());
  }
  return numbers;
}

/** Mount points whose filesystem lives on this loop device, most recent first. */
export async function mountsOfDevice(devicePath: string): Promise<string[]> {
  const numbers = await deviceNumbers(devicePath);
  return (await readMounts())
    .filter((m) => numbers.has(m.device))
    .map((m) => m.mountPoint)
    .reverse();
}

/**
 * A loop device over a fresh sparse file. Only the device path losetup printed is ever used
 * again, so a concurrent test (or the host) using other loop devices is never touched.
 */
export async function createLoopDevice(options: CreateLoopDeviceOptions): Promise<LoopDevice> {
  const backingFile = path.join(path.resolve(options.dir), options.name ?? 'disk.img');
  await execa('truncate', ['-s', String(options.sizeBytes), backingFile], { stdin: 'ignore' });
  let devicePath: string;
  try {
    const { stdout } = await execa('losetup', ['--find', '--show', backingFile], {
      stdin: 'ignore',
    });
    devicePath = stdout.trim();
    if (!LOOP_PATH.test(devicePath)) {
      throw new Error(`losetup printed an unexpected device path: ${JSON.stringify(stdout)}`);
    }
  } catch (error) {
    await rm(backingFile, { force: true });
    throw error;
  }

  let detached = false;
  return {
    path: devicePath,
    backingFile,
    async detach() {
      if (detached) return;
      // Detaching a device with a mounted filesystem only marks it for autoclear; the test's
      // mounts of this very device go first so that the device really disappears.
      for (let round = 0; round < 50; round += 1) {
        const mounted = await mountsOfDevice(devicePath);
        const first = mounted[0];
        if (first === undefined) break;
        await execa('umount', [first], { stdin: 'ignore' });
      }
      await execa('losetup', ['-d', devicePath], { stdin: 'ignore' });
      await rm(backingFile, { force: true });
      detached = true;
    },
  };
}

/** Grows the backing file and tells the kernel, as an EBS volume resize would. */
export async function growLoopDevice(dev: LoopDevice, newSizeBytes: number): Promise<void> {
  const current = (await stat(dev.backingFile)).size;
  if (newSizeBytes < current) {
    throw new Error(`growLoopDevice: ${newSizeBytes} is smaller than ${current}`);
  }
  await execa('truncate', ['-s', String(newSizeBytes), dev.backingFile], { stdin: 'ignore' });
  await execa('losetup', ['-c', dev.path], { stdin: 'ignore' });
}

/** The device size as the kernel reports it, in bytes. */
export async function blockDeviceSize(devicePath: string): Promise<number> {
  const sectors = await readFile(`/sys/class/block/${path.basename(devicePath)}/size`, 'utf8');
  // sysfs counts 512-byte sectors whatever the logical block size.
  return Number(sectors.trim()) * 512;
}
