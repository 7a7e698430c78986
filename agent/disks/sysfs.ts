import { readdirSync, readFileSync, realpathSync, statSync, type Dirent } from 'node:fs';
import path from 'node:path';
import type { BlockDevice } from '../host/block.js';
import { getHostDevPath, type Host } from '../host/host.js';
import { getMountAt, parseMountInfo } from '../host/mountinfo.js';
import { compareDeviceNames } from './names.js';

/**
 * Synchronous sysfs reads for the inventory. sysfs answers from kernel memory in microseconds; the
 * asynchronous calls cost more in thread-pool hand-offs than the reads themselves, and the wait for
 * a late device reads all of it every half second (28 devices: about 1.5 ms this way against 8 ms
 * through fs/promises). The results match readBlockDevice in host/block.ts field for field.
 */
export function readBlockDeviceSync(host: Host, name: string): BlockDevice {
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

export function getNameByNumberSync(host: Host, majorMinor: string): string | undefined {
  try {
    return path.basename(realpathSync(path.join(host.sys, 'dev/block', majorMinor)));
  } catch {
    return undefined;
  }
}

/**
 * /sys/block lists whole disks only. A tree without it (older fixtures) is read from
 * /sys/class/block, leaving out the entries that are partitions.
 */
export function listWholeDisksSync(host: Host): string[] {
  const block = path.join(host.sys, 'block');
  if (exists(block)) {
    return listDir(block).sort(compareDeviceNames);
  }

  return listDir(path.join(host.sys, 'class/block'))
    .filter((name) => !exists(path.join(host.sys, 'class/block', name, 'partition')))
    .sort(compareDeviceNames);
}

/**
 * Symlinks directly under /dev that lead to block devices, by kernel name. udev puts the
 * mapping-name links of amazon-ec2-utils there (/dev/xvdb -> nvme1n1). Links that lead elsewhere
 * (/dev/fd, /dev/stdin) or nowhere are left out.
 */
export function readDevLinksSync(host: Host): Map<string, string> {
  const links = new Map<string, string>();
  let devRoot = host.dev;
  let entries: Dirent[] = [];
  try {
    devRoot = realpathSync(host.dev);
    entries = readdirSync(host.dev, { withFileTypes: true });
  } catch {
    return links;
  }

  for (const entry of entries) {
    if (!entry.isSymbolicLink()) {
      continue;
    }

    try {
      const target = realpathSync(path.join(host.dev, entry.name));
      const name = path.basename(target);
      if (path.dirname(target) === devRoot && exists(path.join(host.sys, 'class/block', name))) {
        links.set(entry.name, name);
      }
    } catch {
      // A link that leads nowhere: udev has not caught up with a device that went away.
    }
  }

  return links;
}

/**
 * Every block device the root filesystem rests on, followed down through md and dm layers to the
 * partitions and their disks.
 *
 * The device is found by the number mountinfo gives, as getRootDeviceNames in host/block.ts does;
 * btrfs reports an anonymous number there (0:NN) for every subvolume, so when that number names
 * no block device the mount source (/dev/nvme0n1p2) is followed instead.
 */
export function getRootDiskNamesSync(host: Host): Set<string> {
  const names = new Set<string>();
  const text = readTrimmed(path.join(host.proc, 'self/mountinfo'));
  const root = getMountAt(parseMountInfo(text ?? ''), '/');
  if (root === undefined) {
    return names;
  }

  const start =
    getNameByNumberSync(host, root.majorMinor) ??
    (root.source.startsWith('/dev/') ? getDeviceNameSync(host, root.source) : undefined);
  const queue = start === undefined ? [] : [start];
  while (queue.length > 0) {
    const name = queue.pop() as string;
    if (names.has(name)) {
      continue;
    }

    names.add(name);
    const device = readBlockDeviceSync(host, name);
    queue.push(...device.slaves);
    if (device.parent !== undefined) {
      queue.push(device.parent);
    }
  }

  return names;
}

/**
 * The kernel name of the block device a /dev path leads to, symlinks followed; undefined when the
 * path leads nowhere or to something that is not a block device. Real device nodes are looked up
 * by device number (a node can be named anything); fixture trees cannot hold nodes, and there the
 * file name is the kernel name.
 */
export function getDeviceNameSync(host: Host, devicePath: string): string | undefined {
  let resolved: string;
  try {
    resolved = realpathSync(getHostDevPath(host, devicePath));
  } catch {
    return undefined;
  }

  const info = statSync(resolved, { bigint: true, throwIfNoEntry: false });
  if (info === undefined) {
    return undefined;
  }

  if (info.isBlockDevice()) {
    // glibc's gnu_dev_major/gnu_dev_minor split of a 64-bit device number.
    const major = ((info.rdev >> 8n) & 0xfffn) | ((info.rdev >> 32n) & ~0xfffn);
    const minor = (info.rdev & 0xffn) | ((info.rdev >> 12n) & ~0xffn);
    return getNameByNumberSync(host, `${major}:${minor}`);
  }

  const name = path.basename(resolved);
  return host.dev !== '/dev' && exists(path.join(host.sys, 'class/block', name)) ? name : undefined;
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
