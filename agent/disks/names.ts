/**
 * Names of block devices and of EC2 block-device mappings, as text. Nothing here reads the
 * machine, so every rule can be checked on its own.
 */

/**
 * The kernel puts a "p" between a disk's name and its partition number when the disk's name
 * itself ends in a digit, so that nvme0n1 + 1 cannot be misread as nvme0n11: nvme0n1p1, loop0p1,
 * md127p1, mmcblk0p1, but xvda1, sda1, vda1.
 */
export function getPartitionName(disk: string, number: number): string {
  return /\d$/.test(disk) ? `${disk}p${number}` : `${disk}${number}`;
}

/**
 * The inverse of getPartitionName for names that follow the kernel's rule; undefined for a name
 * that cannot be a partition. Only a name sysfs lists as a partition really is one (xvda1 can be a
 * whole Xen disk), so callers confirm with sysfs and use this for messages and links.
 */
export function splitPartitionName(name: string): { disk: string; number: number } | undefined {
  const withP = /^(.*\d)p(\d+)$/.exec(name);
  if (withP !== null) {
    return { disk: withP[1] as string, number: Number(withP[2]) };
  }

  const plain = /^(.*[a-z])(\d+)$/.exec(name);
  if (
    plain !== null &&
    !/^(nvme\d+n|loop|md|nbd|ram|zram|sr|fd|mmcblk|pmem)$/.test(plain[1] as string)
  ) {
    return { disk: plain[1] as string, number: Number(plain[2]) };
  }

  return undefined;
}

/**
 * The names EC2 accepts in a block-device mapping (sdf, xvdb, xvdba, and sda1 for some root
 * devices), with or without /dev/. A path such as /dev/nvme1n1 or /dev/loop3 is not one.
 */
const mappingNamePattern = /^(?:sd|xvd|hd)[a-z]{1,2}\d{0,2}$/;

export function isMappingName(text: string): boolean {
  return mappingNamePattern.test(stripDev(text));
}

/**
 * The vendor area and the config may say "/dev/sdf" or "sdf"; udev's link is /dev/sdf either
 * way, so the name is compared without the prefix.
 */
export function normalizeMappingName(text: string): string {
  return stripDev(text.trim());
}

function stripDev(text: string): string {
  return text.startsWith('/dev/') ? text.slice('/dev/'.length) : text;
}

/**
 * Xen's blkfront names the device of a mapping called sdf "xvdf"; on Nitro the mapping name is
 * only a label. Returns the Xen node name to try for a mapping name, or undefined when it is the
 * same name.
 */
export function getXenNodeName(mappingName: string): string | undefined {
  return mappingName.startsWith('sd') ? `xvd${mappingName.slice(2)}` : undefined;
}

/** vol-0123abcd (or vol0123abcd) as the EBS volume id and the NVMe serial that carries it. */
export function parseVolumeId(text: string): { volumeId: string; serial: string } | undefined {
  const match = /^vol-?([0-9a-f]{8}|[0-9a-f]{17})$/.exec(text.trim());
  if (match === null) {
    return undefined;
  }

  return { volumeId: `vol-${match[1]}`, serial: `vol${match[1]}` };
}

/** The EBS volume id an NVMe serial stands for, or undefined when the serial is not one. */
export function getVolumeIdFromSerial(serial: string | undefined): string | undefined {
  return serial === undefined ? undefined : parseVolumeId(serial)?.volumeId;
}

/** nvme2n1 before nvme10n1: the order people expect when reading a list of devices. */
export function compareDeviceNames(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}
