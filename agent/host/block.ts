import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { EnvironmentError } from '../errors.js';
import { getHostDevPath, getMachineDevPath, type Host } from './host.js';

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

/** Resolves a device path (symlinks included) to what sysfs knows about it. */
export async function getBlockDevice(host: Host, devicePath: string): Promise<BlockDevice> {
  const hostPath = getHostDevPath(host, devicePath);
  let resolved: string;
  try {
    resolved = await realpath(hostPath);
  } catch (error) {
    throw new EnvironmentError(`${devicePath}: no such device`, { cause: error });
  }

  const name = await getKernelName(host, resolved);
  if (name === undefined) {
    throw new EnvironmentError(`${devicePath}: not a block device`);
  }

  return readBlockDevice(host, name);
}

/**
 * Device nodes can be named anything, so a real node is looked up by its device number. Fixture
 * trees cannot hold device nodes, and there the file name is the kernel name.
 */
async function getKernelName(host: Host, resolved: string): Promise<string | undefined> {
  const info = await stat(resolved, { bigint: true });
  if (info.isBlockDevice()) {
    // glibc's gnu_dev_major/gnu_dev_minor split of a 64-bit device number.
    const major = ((info.rdev >> 8n) & 0xfffn) | ((info.rdev >> 32n) & ~0xfffn);
    const minor = (info.rdev & 0xffn) | ((info.rdev >> 12n) & ~0xffn);
    return getNameByNumber(host, `${major}:${minor}`);
  }

  const name = path.basename(resolved);
  return host.dev !== '/dev' && (await exists(path.join(host.sys, 'class/block', name)))
    ? name
    : undefined;
}

export async function getNameByNumber(host: Host, majorMinor: string): Promise<string | undefined> {
  try {
    return path.basename(await realpath(path.join(host.sys, 'dev/block', majorMinor)));
  } catch {
    return undefined;
  }
}

export async function readBlockDevice(host: Host, name: string): Promise<BlockDevice> {
  const dir = path.join(host.sys, 'class/block', name);
  const read = (file: string) => readTrimmed(path.join(dir, file));
  const isPartition = (await read('partition')) !== undefined;
  const children = await listDir(dir);
  const partitions: string[] = [];
  for (const child of children) {
    if (child.startsWith(name) && (await exists(path.join(dir, child, 'partition')))) {
      partitions.push(child);
    }
  }

  return {
    name,
    path: getMachineDevPath(host, path.join(host.dev, name)),
    majorMinor: (await read('dev')) ?? '',
    // sysfs counts 512-byte sectors whatever the device's real sector size.
    sizeBytes: Number((await read('size')) ?? 0) * 512,
    parent: isPartition ? path.basename(path.dirname(await realpath(dir))) : undefined,
    partitions: partitions.sort(),
    holders: await listDir(path.join(dir, 'holders')),
    slaves: await listDir(path.join(dir, 'slaves')),
    serial: (await read('device/serial')) ?? (await read('serial')),
    model: await read('device/model'),
    backingFile: await read('loop/backing_file'),
  };
}

/** Devices the kernel is swapping to, by kernel name. */
export async function getSwapDeviceNames(host: Host): Promise<Set<string>> {
  const text = (await readTrimmed(path.join(host.proc, 'swaps'))) ?? '';
  const names = new Set<string>();
  for (const line of text.split('\n').slice(1)) {
    const file = line.split(/\s+/)[0];
    if (file?.startsWith('/dev/')) {
      names.add(path.basename(await realpath(getHostDevPath(host, file)).catch(() => file)));
    }
  }

  return names;
}

async function readTrimmed(file: string): Promise<string | undefined> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch {
    return [];
  }
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}
