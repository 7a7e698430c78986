import type { Stats } from 'node:fs';
import { lstat, stat } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, EnvironmentError, isEnvironmentError } from '../errors.js';
import { getHostDevPath } from '../host/host.js';
import { globToRegExp } from '../text.js';
import { isBlank, type Signatures } from '../host/signatures.js';
import { getDeviceName } from '../host/block.js';
import { describeDevice, describeInventory, type Disk, type Inventory } from './inventory.js';
import {
  compareDeviceNames,
  getXenNodeName,
  isMappingName,
  normalizeMappingName,
  parseVolumeId,
} from './names.js';

/** The forms volume.device (and each entry of volume.devices) can take. */
export type Selector =
  | { kind: 'path'; text: string; path: string }
  | { kind: 'mapping-name'; text: string; name: string }
  | { kind: 'volume-id'; text: string; volumeId: string; serial: string }
  | { kind: 'auto'; text: string };

/**
 * Reads a selector's form from its text alone. /dev/xvdb and /dev/sdf are mapping names rather
 * than paths: udev's link of that name is only the first place such a name is looked for.
 */
export function parseSelector(text: string, key = 'volume.device'): Selector {
  const trimmed = text.trim();
  if (trimmed === 'auto') {
    return { kind: 'auto', text: trimmed };
  }

  const volume = parseVolumeId(trimmed);
  if (volume !== undefined) {
    return { kind: 'volume-id', text: trimmed, ...volume };
  }

  if (isMappingName(trimmed) && (!trimmed.includes('/') || /^\/dev\/[^/]+$/.test(trimmed))) {
    return { kind: 'mapping-name', text: trimmed, name: normalizeMappingName(trimmed) };
  }

  if (trimmed.startsWith('/')) {
    return { kind: 'path', text: trimmed, path: path.normalize(trimmed) };
  }

  throw new ConfigError(
    `${key}: got "${text}"; allowed: a device path (/dev/nvme1n1, /dev/disk/by-id/…), ` +
      'a block-device mapping name (xvdb, /dev/sdf), an EBS volume id (vol-0123…) or "auto"',
  );
}

/**
 * Why a selector did not give exactly one device. `missing` may clear up by waiting (a volume
 * still attaching, udev not settled); the others will not.
 */
export type SelectorProblem = 'missing' | 'ambiguous' | 'conflict' | 'refused';

/** An EnvironmentError (exit 3) that also carries every device seen, for structured logs. */
export class SelectorError extends EnvironmentError {
  readonly problem: SelectorProblem;
  readonly seen: readonly Disk[];

  constructor(problem: SelectorProblem, message: string, seen: readonly Disk[], hint?: string) {
    super(`${message}; seen: ${describeInventory(seen)}`, hint === undefined ? {} : { hint });
    this.problem = problem;
    this.seen = seen;
  }
}

/**
 * Whether waiting longer could help. Read from the error's fields rather than by instanceof, as
 * errors.ts does, since each bundle carries its own copy of the classes.
 */
export function isMissingDevice(error: unknown): boolean {
  return isEnvironmentError(error) && (error as { problem?: unknown }).problem === 'missing';
}

export type ResolvedVia =
  | 'path'
  | 'udev link'
  | 'vendor area'
  | 'xen node'
  | 'volume id'
  | 'ctrvol label'
  | 'only blank volume';

export interface Resolution {
  disk: Disk;
  selector: Selector;
  via: ResolvedVia;
  /** One phrase for the log: "/dev/xvdb -> nvme1n1", "vendor area of nvme2n1 says /dev/sdf". */
  detail: string;
}

export interface ResolveOptions {
  /** ctrvol's filesystem label (volume.label), which `auto` accepts besides blank volumes. */
  label?: string;
  /** What blkid and wipefs see on a device; only `auto` asks, and only about candidates. */
  getSignatures?: (disk: Disk) => Promise<Signatures>;
  /** The config key named in messages. */
  key?: string;
}

export async function resolveSelector(
  inventory: Inventory,
  selector: string | Selector,
  options: ResolveOptions = {},
): Promise<Resolution> {
  const parsed = typeof selector === 'string' ? parseSelector(selector, options.key) : selector;
  switch (parsed.kind) {
    case 'path':
      return resolvePath(inventory, parsed);
    case 'mapping-name':
      return resolveMappingName(inventory, parsed);
    case 'volume-id':
      return resolveVolumeId(inventory, parsed);
    case 'auto':
      return resolveAuto(inventory, parsed, options);
  }
}

async function resolvePath(
  inventory: Inventory,
  selector: Extract<Selector, { kind: 'path' }>,
): Promise<Resolution> {
  const { host, disks } = inventory;
  const name = getDeviceName(host, selector.path);
  if (name === undefined) {
    const present = await lstat(getHostDevPath(host, selector.path)).then(
      () => true,
      () => false,
    );
    if (!present) {
      throw new SelectorError('missing', `${selector.path}: no such device`, disks);
    }

    throw new SelectorError(
      'refused',
      `${selector.path} is not a block device (or leads to one that is gone)`,
      disks,
    );
  }

  const disk = await describeDevice(inventory, name);
  const detail = selector.path === disk.path ? disk.path : `${selector.path} -> ${disk.name}`;
  return { disk, selector, via: 'path', detail };
}

/**
 * A mapping name is looked for where each kind of machine keeps it: udev's link (amazon-ec2-utils
 * makes /dev/xvdb -> nvme1n1), then the NVMe vendor area itself (for the seconds after boot before
 * udev has made the link), then a Xen node of that name. Where two sources disagree nothing is
 * chosen: a stale link and a wrong disk look the same from here.
 */
async function resolveMappingName(
  inventory: Inventory,
  selector: Extract<Selector, { kind: 'mapping-name' }>,
): Promise<Resolution> {
  const { host, disks } = inventory;
  const { name } = selector;
  const linkPath = `/dev/${name}`;
  const entry = await lstat(getHostDevPath(host, linkPath)).catch(() => undefined);
  const claimants = disks.filter((disk) => disk.identify?.mappingName === name);

  if (entry?.isSymbolicLink()) {
    const target = getDeviceName(host, linkPath);
    if (target !== undefined) {
      const disk = await describeDevice(inventory, target);
      const own = disk.identify?.mappingName;
      if (own !== undefined && own !== name) {
        throw new SelectorError(
          'conflict',
          `${linkPath} leads to ${disk.name}, but the NVMe vendor area of ${disk.name} names it ` +
            `"${disk.identify?.rawMappingName}"`,
          disks,
          "udev's links may be stale; compare the instance's block-device mappings",
        );
      }

      const others = claimants.filter((claimant) => claimant.name !== disk.name);
      if (others.length > 0) {
        throw new SelectorError(
          'conflict',
          `${linkPath} leads to ${disk.name}, but the NVMe vendor area of ` +
            `${others.map((other) => other.name).join(', ')} names ${name}`,
          disks,
          "udev's links may be stale; compare the instance's block-device mappings",
        );
      }

      return { disk, selector, via: 'udev link', detail: `${linkPath} -> ${disk.name}` };
    }
  }

  if (claimants.length > 1) {
    throw new SelectorError(
      'conflict',
      `the NVMe vendor areas of ${claimants.map((disk) => disk.name).join(' and ')} all name ` +
        `${name}`,
      disks,
    );
  }

  const [claimant] = claimants;
  if (claimant !== undefined) {
    const said = claimant.identify?.rawMappingName ?? name;
    return {
      disk: claimant,
      selector,
      via: 'vendor area',
      detail: `the NVMe vendor area of ${claimant.name} says ${said}`,
    };
  }

  // On Xen the mapping name is the node's own name, except that blkfront calls sdf "xvdf".
  for (const nodeName of [name, getXenNodeName(name)]) {
    if (
      nodeName !== undefined &&
      !(nodeName === name && entry?.isSymbolicLink()) &&
      (await exists(path.join(host.sys, 'class/block', nodeName)))
    ) {
      const disk = await describeDevice(inventory, nodeName);
      return { disk, selector, via: 'xen node', detail: `the node /dev/${nodeName}` };
    }
  }

  const xenName = getXenNodeName(name);
  const nodes = xenName === undefined ? `/dev/${name}` : `/dev/${name} or /dev/${xenName}`;
  throw new SelectorError(
    'missing',
    `no device has the mapping name ${name}: ${describeLink(entry, linkPath)}, ` +
      `${describeVendorAreas(inventory)}, and there is no node ${nodes}`,
    disks,
    'is the volume attached under that name? a late volume is waited for up to volume.waitSeconds',
  );
}

function describeLink(entry: Stats | undefined, linkPath: string): string {
  if (entry === undefined) {
    return `udev has made no ${linkPath}`;
  }

  return entry.isSymbolicLink()
    ? `${linkPath} leads to no block device`
    : `${linkPath} is not udev's link`;
}

function describeVendorAreas(inventory: Inventory): string {
  if (inventory.identify === undefined) {
    return 'the NVMe vendor areas were not read';
  }

  const read = inventory.disks.filter((disk) => disk.identify !== undefined);
  const failed = inventory.disks.filter((disk) => disk.identifyError !== undefined);
  const names = read
    .map((disk) => disk.identify?.mappingName)
    .filter((name): name is string => name !== undefined)
    .sort(compareDeviceNames);
  const [first] = failed;
  const failures =
    first === undefined
      ? ''
      : ` (unreadable on ${failed.length}: ${first.name}: ${first.identifyError})`;
  if (names.length > 0) {
    return `the NVMe vendor areas name ${names.join(', ')}${failures}`;
  }

  if (read.length === 0) {
    return first === undefined
      ? 'no device has an NVMe vendor area to ask'
      : `no NVMe vendor area could be read${failures}`;
  }

  return `none of the ${read.length} NVMe vendor areas read names a device${failures}`;
}

function resolveVolumeId(
  inventory: Inventory,
  selector: Extract<Selector, { kind: 'volume-id' }>,
): Resolution {
  const { disks } = inventory;
  const matches = disks.filter(
    (disk) => disk.serial === selector.serial || disk.identify?.serial === selector.serial,
  );
  if (matches.length > 1) {
    throw new SelectorError(
      'conflict',
      `${matches.map((disk) => disk.name).join(' and ')} all have the serial ${selector.serial}`,
      disks,
    );
  }

  const [disk] = matches;
  if (disk === undefined) {
    throw new SelectorError(
      'missing',
      `no device has the serial ${selector.serial} (EBS volume ${selector.volumeId})`,
      disks,
      'is the volume attached to this instance? a late volume is waited for up to ' +
        'volume.waitSeconds',
    );
  }

  return { disk, selector, via: 'volume id', detail: `${disk.name} has serial ${disk.serial}` };
}

/**
 * `auto` takes the EBS volume that is already ctrvol's (it carries the label) or else the only
 * blank one, never the root disk and never a device held by md or dm. A labelled volume wins over
 * blank ones: it is the one an earlier run set up, and a blank volume attached since then is
 * somebody else's business. Two labelled ones, or two blank ones and no labelled one, are a choice
 * ctrvol will not make.
 */
async function resolveAuto(
  inventory: Inventory,
  selector: Extract<Selector, { kind: 'auto' }>,
  options: ResolveOptions,
): Promise<Resolution> {
  const { disks } = inventory;
  const { getSignatures, label } = options;
  if (getSignatures === undefined || label === undefined) {
    throw new Error('resolving "auto" needs the volume label and a way to read signatures');
  }

  const skipped: string[] = [];
  const candidates: Disk[] = [];
  for (const disk of disks.filter((each) => each.kind === 'ebs')) {
    if (disk.backsRoot) {
      skipped.push(`${disk.name} holds the root filesystem`);
    } else if (disk.holders.length > 0) {
      skipped.push(`${disk.name} is in use by ${disk.holders.join(', ')}`);
    } else {
      candidates.push(disk);
    }
  }

  const probed = await Promise.all(
    candidates.map(async (disk) => ({ disk, signatures: await getSignatures(disk) })),
  );
  const labelled = probed.filter(
    ({ signatures }) =>
      signatures.label === label && (signatures.fsType === 'xfs' || signatures.fsType === 'ext4'),
  );
  if (labelled.length > 1) {
    throw new SelectorError(
      'ambiguous',
      `auto found ${labelled.length} EBS volumes labelled "${label}": ` +
        labelled.map(({ disk }) => nameDisk(disk)).join(', '),
      disks,
      'name the one to use by volume id or mapping name in volume.device',
    );
  }

  const [mine] = labelled;
  if (mine !== undefined) {
    return {
      disk: mine.disk,
      selector,
      via: 'ctrvol label',
      detail: `${mine.disk.name} carries the label "${label}"`,
    };
  }

  const blank = probed.filter(({ disk, signatures }) =>
    isBlank(signatures, disk.partitions.length),
  );
  if (blank.length > 1) {
    throw new SelectorError(
      'ambiguous',
      `auto found ${blank.length} blank non-root EBS volumes: ` +
        blank.map(({ disk }) => nameDisk(disk)).join(', '),
      disks,
      'name the one to use by volume id or mapping name in volume.device',
    );
  }

  const [only] = blank;
  if (only !== undefined) {
    return {
      disk: only.disk,
      selector,
      via: 'only blank volume',
      detail: `${only.disk.name} is the only blank non-root EBS volume`,
    };
  }

  for (const { disk, signatures } of probed) {
    skipped.push(`${disk.name} carries ${describeSignatures(signatures)}`);
  }

  const why = skipped.length === 0 ? 'there are no EBS volumes' : skipped.join(', ');
  throw new SelectorError(
    'missing',
    `auto found no blank non-root EBS volume and none labelled "${label}" (${why})`,
    disks,
    'attach a new EBS volume, or name the device in volume.device',
  );
}

function describeSignatures(signatures: Signatures): string {
  if (signatures.fsType !== undefined) {
    const named = signatures.label === undefined ? 'no label' : `label "${signatures.label}"`;
    return `${signatures.fsType} with ${named}`;
  }

  if (signatures.partitionTable !== undefined) {
    return `a ${signatures.partitionTable} partition table`;
  }

  return signatures.all.length === 0 ? 'partitions' : signatures.all.join(', ');
}

export type RaidLevel = 'raid0' | 'raid10';
export type InstanceStoreMode = RaidLevel | 'single';

/** What a set of devices becomes: the one device itself, or the members of an md array. */
export type Pool =
  | { kind: 'single'; disk: Disk; members: [Disk] }
  | { kind: 'array'; level: RaidLevel; members: Disk[] };

/** raid10 keeps two copies of every chunk, each pair striped with the next: four disks at least. */
export const raid10MinimumDisks = 4;

export interface InstanceStoreOptions {
  /**
   * Serials that also count as instance store: a RegExp, or a glob in which * and ? are the only
   * wildcards. For machines that cannot set the NVMe model, such as qemu test guests.
   */
  serialPattern?: RegExp | string;
}

/**
 * The instance-store disks: every disk whose NVMe model is Amazon's instance-store model, plus any
 * whose serial matches the given pattern. After a reboot they may already be members of ctrvol's
 * array; that is for the md planner to see, so disks held by md are not left out here.
 */
export function selectInstanceStore(
  inventory: Inventory,
  mode: InstanceStoreMode,
  options: InstanceStoreOptions = {},
): Pool {
  const { disks } = inventory;
  const { serialPattern } = options;
  const pattern = typeof serialPattern === 'string' ? globToRegExp(serialPattern) : serialPattern;
  const members = disks.filter(
    (disk) =>
      disk.kind === 'instance-store' ||
      (pattern !== undefined && disk.serial !== undefined && pattern.test(disk.serial)),
  );
  const rooted = members.filter((disk) => disk.backsRoot);
  if (rooted.length > 0) {
    throw new SelectorError(
      'refused',
      `volume.instanceStore: ${rooted.map(nameDisk).join(', ')} matched but holds the root ` +
        'filesystem',
      disks,
      'narrow the serial pattern; ctrvol never touches the root disk',
    );
  }

  if (members.length === 0) {
    const how =
      pattern === undefined
        ? `with the model "Amazon EC2 NVMe Instance Storage"`
        : `with that model or a serial matching ${String(serialPattern)}`;
    throw new SelectorError(
      'missing',
      `volume.instanceStore: no disk ${how}`,
      disks,
      'does this instance type have instance storage?',
    );
  }

  if (mode === 'single' && members.length > 1) {
    throw new SelectorError(
      'refused',
      `volume.instanceStore: single, but there are ${members.length} instance-store disks: ` +
        members.map(nameDisk).join(', '),
      disks,
      'use raid0 (or raid10 with four or more) to pool them',
    );
  }

  return toPool(members, mode === 'single' ? 'raid0' : mode, 'volume.instanceStore', disks);
}

/**
 * volume.devices with volume.raid: every entry resolved as volume.device would be, each to a
 * different device. `auto` has no meaning in a list.
 */
export async function resolveDeviceList(
  inventory: Inventory,
  selectors: readonly string[],
  level: RaidLevel,
  options: Omit<ResolveOptions, 'key'> = {},
): Promise<Pool> {
  const { disks } = inventory;
  const resolutions: Resolution[] = [];
  for (const [index, text] of selectors.entries()) {
    const key = `volume.devices[${index}]`;
    const selector = parseSelector(text, key);
    if (selector.kind === 'auto') {
      throw new ConfigError(`${key}: got "auto"; allowed in a list: paths, mapping names, ids`);
    }

    resolutions.push(await resolveSelector(inventory, selector, { ...options, key }));
  }

  const byName = new Map<string, Resolution>();
  for (const resolution of resolutions) {
    const earlier = byName.get(resolution.disk.name);
    if (earlier !== undefined) {
      throw new SelectorError(
        'refused',
        `volume.devices: "${earlier.selector.text}" and "${resolution.selector.text}" are the ` +
          `same device, ${resolution.disk.name}`,
        disks,
      );
    }

    byName.set(resolution.disk.name, resolution);
  }

  const members = resolutions.map((resolution) => resolution.disk);
  const rooted = members.filter((disk) => disk.backsRoot);
  if (rooted.length > 0) {
    throw new SelectorError(
      'refused',
      `volume.devices: ${rooted.map(nameDisk).join(', ')} holds the root filesystem`,
      disks,
      'ctrvol never touches the root disk',
    );
  }

  return toPool(members, level, 'volume.devices', disks);
}

function toPool(members: Disk[], level: RaidLevel, key: string, seen: readonly Disk[]): Pool {
  const sorted = [...members].sort((a, b) => compareDeviceNames(a.name, b.name));
  if (level === 'raid10' && sorted.length < raid10MinimumDisks) {
    throw new SelectorError(
      'refused',
      `${key}: raid10 needs at least ${raid10MinimumDisks} disks; there are ${sorted.length}: ` +
        sorted.map(nameDisk).join(', '),
      seen,
      'use raid0 for fewer disks',
    );
  }

  const [first] = sorted;
  if (sorted.length === 1 && first !== undefined) {
    // One disk needs no array: it is used as it is, as EKS and Bottlerocket do.
    return { kind: 'single', disk: first, members: [first] };
  }

  return { kind: 'array', level, members: sorted };
}

/** A device named briefly where the full list of what was seen follows anyway. */
function nameDisk(disk: Disk): string {
  return disk.mappingName === undefined ? disk.name : `${disk.name} (${disk.mappingName})`;
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}
