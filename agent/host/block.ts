import { readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { EnvironmentError } from '../errors.js';
import { getHostDevPath, type Host } from './host.js';

/** What sysfs says about one block device. */
export interface BlockDevice {
  /** Kernel name: loop3, nvme1n1, md127. */
  name: string;
  /** The path the machine knows it by, /dev/NAME. */
  path: string;
  majorMinor: string;
  sizeBytes: number;
  /** Set when this is itself a partition; holds the disk it belongs to. */
  parent: string | undefined;
  partitions: string[];
  /** Devices built on top of this one (dm, md); a device with holders is in use. */
  holders: string[];
  /** Devices this one is built from (dm, md). */
  slaves: string[];
  serial: string | undefined;
  model: string | undefined;
  /** For loop devices, the file behind them: the closest thing a loop device has to a serial. */
  backingFile: string | undefined;
}

/**
 * Everything here reads sysfs, /proc and /dev synchronously. Those answer from kernel memory in
 * microseconds; through fs/promises each read costs a thread-pool hand-off that is worth more
 * than the read, and a device takes a dozen of them (28 devices: about 1.5 ms this way against
 * 8 ms asynchronously). The inventory reads every device again each half second while it waits
 * for a late one.
 */

/** Resolves a device path (symlinks included) to what sysfs knows about it. */
export async function getBlockDevice(host: Host, devicePath: string): Promise<BlockDevice> {
  let resolved: string;
  try {
    resolved = realpathSync(getHostDevPath(host, devicePath));
  } catch (error) {
    throw new EnvironmentError(`${devicePath}: no such device`, { cause: error });
  }

  const name = getKernelName(host, resolved);
  if (name === undefined) {
    throw new EnvironmentError(`${devicePath}: not a block device`);
  }

  return readBlockDevice(host, name);
}

/**
 * The kernel name of the block device a /dev path leads to, symlinks followed; undefined when the
 * path leads nowhere or to something that is not a block device.
 */
export function getDeviceName(host: Host, devicePath: string): string | undefined {
  try {
    return getKernelName(host, realpathSync(getHostDevPath(host, devicePath)));
  } catch {
    return undefined;
  }
}

/**
 * Device nodes can be named anything, so a real node is looked up by its device number. Fixture
 * trees cannot hold device nodes, and there the file name is the kernel name.
 */
function getKernelName(host: Host, resolved: string): string | undefined {
  const info = statSync(resolved, { bigint: true, throwIfNoEntry: false });
  if (info === undefined) {
    return undefined;
  }

  if (info.isBlockDevice()) {
    // glibc's gnu_dev_major/gnu_dev_minor split of a 64-bit device number.
    const major = ((info.rdev >> 8n) & 0xfffn) | ((info.rdev >> 32n) & ~0xfffn);
    const minor = (info.rdev & 0xffn) | ((info.rdev >> 12n) & ~0xffn);
    return getNameByNumber(host, `${major}:${minor}`);
  }

  const name = path.basename(resolved);
  return host.dev !== '/dev' && exists(path.join(host.sys, 'class/block', name)) ? name : undefined;
}

export function getNameByNumber(host: Host, majorMinor: string): string | undefined {
  try {
    return path.basename(realpathSync(path.join(host.sys, 'dev/block', majorMinor)));
  } catch {
    return undefined;
  }
}

export function readBlockDevice(host: Host, name: string): BlockDevice {
  const dir = path.join(host.sys, 'class/block', name);
  const read = (file: string) => readTrimmed(path.join(dir, file));
  const isPartition = read('partition') !== undefined;
  const partitions = listDir(dir).filter(
    (child) => child.startsWith(name) && exists(path.join(dir, child, 'partition')),
  );

  return {
    name,
    path: `/dev/${name}`,
    majorMinor: read('dev') ?? '',
    // sysfs counts 512-byte sectors whatever the device's real sector size.
    sizeBytes: Number(read('size') ?? 0) * 512,
    parent: isPartition ? path.basename(path.dirname(realpathSync(dir))) : undefined,
    partitions,
    holders: listDir(path.join(dir, 'holders')),
    slaves: listDir(path.join(dir, 'slaves')),
    serial: read('device/serial') ?? read('serial'),
    model: read('device/model'),
    backingFile: read('loop/backing_file'),
  };
}

/** Devices the kernel is swapping to, by kernel name. */
export function getSwapDeviceNames(host: Host): Set<string> {
  const text = readTrimmed(path.join(host.proc, 'swaps')) ?? '';
  const names = new Set<string>();
  for (const line of text.split('\n').slice(1)) {
    const file = line.split(/\s+/)[0];
    if (file?.startsWith('/dev/')) {
      names.add(getDeviceName(host, file) ?? path.basename(file));
    }
  }

  return names;
}

function readTrimmed(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

function exists(file: string): boolean {
  return statSync(file, { throwIfNoEntry: false }) !== undefined;
}
