import { type BlockDevice, readBlockDevice } from '../host/block.js';
import type { Host } from '../host/host.js';
import { formatBytes } from '../text.js';
import type { IdentifyData, IdentifyReader } from './identify.js';
import { compareDeviceNames, getVolumeIdFromSerial, isMappingName } from './names.js';
import { getRootDiskNames, listWholeDisksSync, readDevLinksSync } from './sysfs.js';

export const ebsModel = 'Amazon Elastic Block Store';
export const instanceStoreModel = 'Amazon EC2 NVMe Instance Storage';

export type DiskKind = 'ebs' | 'instance-store' | 'other';

/** One block device as ctrvol's selectors see it: sysfs facts plus names from udev and NVMe. */
export interface Disk extends BlockDevice {
  kind: DiskKind;
  /** vol-0123… for an EBS volume, read from its NVMe serial. */
  volumeId: string | undefined;
  /** Names of the symlinks directly under /dev that point at this device (udev's xvdb, sdf). */
  links: string[];
  /** The Identify Controller data, when a reader was given and the device has some. */
  identify: IdentifyData | undefined;
  /** Why the Identify data could not be read, when reading it failed. */
  identifyError: string | undefined;
  /** The mapping name: a udev link, else the NVMe vendor area, else a Xen node's own name. */
  mappingName: string | undefined;
  /** The root filesystem rests on this device (or on a partition, md or dm device built on it). */
  backsRoot: boolean;
}

export interface Inventory {
  host: Host;
  /** Whole disks worth showing and choosing from, in natural name order. */
  disks: Disk[];
  /** Every device under /, partitions and md/dm layers included. */
  rootNames: ReadonlySet<string>;
  /** Symlinks directly under /dev, by the kernel name they lead to. */
  links: ReadonlyMap<string, string>;
  /** The reader used for the disks, so that a device found by path is described the same way. */
  identify: IdentifyReader | undefined;
}

export interface InventoryOptions {
  /** Where the NVMe vendor area comes from; without one, only udev links give mapping names. */
  identify?: IdentifyReader;
  /** List md and dm devices too (they are never chosen by model, serial or mapping name). */
  includeVirtual?: boolean;
}

/**
 * Every whole disk of the machine with what the selectors need. Partitions are left out (they are
 * listed on their disk), and so are devices that can never hold a volume: RAM disks, zram, optical
 * and floppy drives, and loop devices with nothing attached.
 */
export async function readInventory(
  host: Host,
  options: InventoryOptions = {},
): Promise<Inventory> {
  const rootNames = getRootDiskNames(host);
  const links = readDevLinksSync(host);
  const devices = listWholeDisksSync(host).flatMap((name) => readIfStillThere(host, name));
  const listed = devices.filter((device) => isListed(device, options.includeVirtual ?? false));
  const disks = await Promise.all(
    listed.map((device) =>
      describeBlockDevice(device, { rootNames, links, identify: options.identify }),
    ),
  );

  return { host, disks, rootNames, links, identify: options.identify };
}

/**
 * A device listed a moment ago may be gone when its files are read (a loop device detached, a
 * volume detached while udev settles): it is left out, as the next listing would.
 */
function readIfStillThere(host: Host, name: string): BlockDevice[] {
  try {
    return [readBlockDevice(host, name)];
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      return [];
    }

    throw error;
  }
}

/**
 * Describes a device that the listing may have left out (a partition, an md array, a loop device
 * named by path), the same way as the listed ones.
 */
export async function describeDevice(inventory: Inventory, name: string): Promise<Disk> {
  const listed = inventory.disks.find((disk) => disk.name === name);
  if (listed !== undefined) {
    return listed;
  }

  return describeBlockDevice(readBlockDevice(inventory.host, name), inventory);
}

interface DescribeContext {
  rootNames: ReadonlySet<string>;
  /** Link name under /dev → kernel name it resolves to. */
  links: ReadonlyMap<string, string>;
  identify: IdentifyReader | undefined;
}

async function describeBlockDevice(device: BlockDevice, context: DescribeContext): Promise<Disk> {
  const kind = getDiskKind(device.model);
  const links = [...context.links]
    .filter(([, target]) => target === device.name)
    .map(([link]) => link)
    .sort(compareDeviceNames);
  let identify: IdentifyData | undefined;
  let identifyError: string | undefined;
  if (context.identify !== undefined && device.parent === undefined) {
    try {
      identify = await context.identify.read(device);
    } catch (error) {
      identifyError = error instanceof Error ? error.message : String(error);
    }
  }

  // A serial that differs from sysfs means the answer came from another controller (the names
  // moved between the two reads); a mapping name from it would point at the wrong volume.
  if (
    identify?.serial !== undefined &&
    device.serial !== undefined &&
    identify.serial !== device.serial
  ) {
    identifyError = `Identify serial ${identify.serial} is not the sysfs serial ${device.serial}`;
    identify = undefined;
  }

  const parents = device.parent === undefined ? [] : [device.parent];
  return {
    ...device,
    kind,
    volumeId: kind === 'ebs' ? getVolumeIdFromSerial(device.serial) : undefined,
    links,
    identify,
    identifyError,
    mappingName:
      links.find(isMappingName) ??
      identify?.mappingName ??
      (/^xvd/.test(device.name) ? device.name : undefined),
    backsRoot: [device.name, ...parents].some((name) => context.rootNames.has(name)),
  };
}

export function getDiskKind(model: string | undefined): DiskKind {
  if (model === ebsModel) {
    return 'ebs';
  }

  return model === instanceStoreModel ? 'instance-store' : 'other';
}

function isListed(device: BlockDevice, includeVirtual: boolean): boolean {
  const { name } = device;
  if (/^(ram|zram|sr|fd)\d+$/.test(name)) {
    return false;
  }

  if (/^loop\d+$/.test(name)) {
    return device.backingFile !== undefined;
  }

  return includeVirtual || !/^(md\d+|md_|dm-\d+)/.test(name);
}

/** One device as a line of an error: name, size, model, serial, mapping name, and whether root. */
export function describeDisk(disk: Disk): string {
  const parts = [
    formatBytes(disk.sizeBytes),
    disk.model === undefined || disk.model === '' ? 'no model' : disk.model,
    disk.serial === undefined || disk.serial === '' ? 'no serial' : `serial ${disk.serial}`,
    disk.mappingName === undefined ? 'no mapping name' : `mapping ${disk.mappingName}`,
  ];
  if (disk.backingFile !== undefined) {
    parts.push(`file ${disk.backingFile}`);
  }

  if (disk.backsRoot) {
    parts.push('root');
  }

  return `${disk.name} (${parts.join(', ')})`;
}

/** The whole inventory as one line: what an operator needs to see when a selector fails. */
export function describeInventory(disks: readonly Disk[]): string {
  return disks.length === 0 ? 'no block devices at all' : disks.map(describeDisk).join('; ');
}
