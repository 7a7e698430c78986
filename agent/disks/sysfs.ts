import { readdirSync, realpathSync, statSync, type Dirent } from 'node:fs';
import path from 'node:path';
import { getDeviceName, getNameByNumber, readBlockDevice } from '../host/block.js';
import type { Host } from '../host/host.js';
import { getMountAt, readMountInfo } from '../host/mountinfo.js';
import { compareDeviceNames } from './names.js';

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
 * The device is found by the number mountinfo gives; btrfs reports an anonymous number there
 * (0:NN) for every subvolume, so when that number names no block device the mount source
 * (/dev/nvme0n1p2) is followed instead.
 */
export function getRootDiskNames(host: Host): Set<string> {
  const names = new Set<string>();
  const root = getMountAt(readMountInfo(host), '/');
  if (root === undefined) {
    return names;
  }

  const start =
    getNameByNumber(host, root.majorMinor) ??
    (root.source.startsWith('/dev/') ? getDeviceName(host, root.source) : undefined);
  const queue = start === undefined ? [] : [start];
  while (queue.length > 0) {
    const name = queue.pop() as string;
    if (names.has(name)) {
      continue;
    }

    names.add(name);
    const device = readBlockDevice(host, name);
    queue.push(...device.slaves);
    if (device.parent !== undefined) {
      queue.push(device.parent);
    }
  }

  return names;
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
