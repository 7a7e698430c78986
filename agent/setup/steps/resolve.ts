import { access, lstat } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { xfsMinimumBytes } from '../../config/schema.js';
import { ConfigError, EnvironmentError, getErrorLine } from '../../errors.js';
import { type BlockDevice, getBlockDevice, getSwapDeviceNames } from '../../host/block.js';
import { type ContentSample, describeContent } from '../../host/content.js';
import { cacheIdentifyReader, createIdentifyReader } from '../../disks/identify.js';
import { readInventory, type Inventory } from '../../disks/inventory.js';
import { getRootDiskNames } from '../../disks/sysfs.js';
import { arrayDevice, arrayName } from '../../disks/md.js';
import { compareDeviceNames } from '../../disks/names.js';
import {
  isMissingDevice,
  parseSelector,
  resolveDeviceList,
  resolveSelector,
  selectInstanceStore,
  type Pool,
  type ResolveOptions,
} from '../../disks/selectors.js';
import { isOwnBind } from '../../host/bind-mounts.js';
import { findLocalStorageClaims, getOwnerConflict } from '../../host/nodeadm.js';
import { getMountAt, readMountInfo } from '../../host/mountinfo.js';
import { isBlank, probeSignatures, type Signatures } from '../../host/signatures.js';
import type { Logger } from '../../log/logger.js';
import { formatBytes } from '../../text.js';
import { readJson } from '../../state/files.js';
import { bindDir, volumeMetaDir } from '../../state/paths.js';
import { readState } from '../../state/state.js';
import { ensureArray } from '../array.js';
import {
  checkContent,
  measureSourceEarly,
  sampleDeviceContent,
  type SetupContext,
  type Volume,
} from '../context.js';
import { checked, type Step } from '../step.js';
import { getDeviceIdentity, type FormatIntent } from './format.js';

export const resolveStep: Step = {
  name: 'resolve',
  async run(context, logger) {
    // Read only now, under the lock: a run that waited for another must see what that one did.
    context.previous = await readState(context.paths.stateFile);
    measureSourceEarly(context);
    await refuseSecondOwner(context);
    const found = await findDevice(context, logger);
    const volume =
      found.planned === undefined
        ? await probeVolume(context, found.device)
        : {
            device: found.planned,
            signatures: noSignatures,
            formatReason: 'blank' as const,
            mounts: [],
          };
    context.volume = volume;
    const { device, signatures } = volume;
    const what =
      signatures.fsType === undefined ? 'blank' : `${signatures.fsType} ${signatures.uuid}`;

    return checked(`${device.path}: ${what}, ${formatBytes(device.sizeBytes)}`);
  },
};

const noSignatures: Signatures = {
  fsType: undefined,
  uuid: undefined,
  label: undefined,
  partitionTable: undefined,
  all: [],
};

/**
 * The device to use, or in a dry run that would first build an md array, the array as it would
 * be (blank, at /dev/md/ctrvol).
 */
type Found = { device: BlockDevice; planned?: undefined } | { planned: BlockDevice };

/**
 * A machine that was set up before is looked up by the UUID it recorded, because a raw name such
 * as /dev/nvme1n1 can point at another disk after a reboot. Only when that UUID is nowhere to be
 * found (a new instance-store disk after stop/start, a replaced volume) is the configured device
 * used.
 */
async function findDevice(context: SetupContext, logger: Logger): Promise<Found> {
  const { previous } = context;
  const uuid = previous?.uuid;
  if (uuid !== undefined) {
    // Every device with that UUID, not just the first: a snapshot of the volume restored and
    // attached beside it carries the same one, and mounting whichever blkid lists first could
    // put the node on a stale copy.
    const found = await context.run.run('blkid', ['-o', 'device', '-t', `UUID=${uuid}`], {
      okExitCodes: [2],
    });
    const paths = found.stdout.split('\n').filter((line) => line.trim() !== '');
    if (paths.length > 1) {
      throw new EnvironmentError(
        `${paths.length} devices carry the recorded UUID ${uuid}: ${paths.join(', ')}`,
        {
          hint:
            'a copy of the volume (a restored snapshot?) is attached; detach it, or give it a ' +
            'new UUID (xfs_admin -U generate, tune2fs -U random); nothing was changed',
        },
      );
    }

    const devicePath = paths[0]?.trim() ?? '';
    if (found.exitCode === 0 && devicePath !== '') {
      logger.info({ uuid, device: devicePath }, 'found the recorded volume by UUID');
      warnIfConfigMoved(context, logger);
      const device = await getBlockDevice(context.host, devicePath);
      // The array came back assembled at boot (as /dev/md127, say); its record carries over,
      // with the members' names as they are now.
      if (previous?.array !== undefined && device.slaves.length > 0) {
        context.array = { ...previous.array, members: [...device.slaves].sort(compareDeviceNames) };
      }

      return { device };
    }

    logger.warn({ uuid }, 'the recorded volume is gone; using the configured device');
  }

  const pool = await waitForPool(context, logger);
  if (pool.kind === 'single') {
    return { device: await getBlockDevice(context.host, pool.disk.path) };
  }

  const array = await ensureArray(context, logger, pool);
  if (array.device === undefined) {
    return { planned: plannedArray(pool) };
  }

  return { device: await getBlockDevice(context.host, array.device) };
}

/**
 * The recorded volume wins over the config, by design (a raw name may point elsewhere after a
 * reboot). A config that now asks for another kind of storage is most likely a change the
 * operator expects to take effect, so it is said loudly.
 */
function warnIfConfigMoved(context: SetupContext, logger: Logger): void {
  const { volume } = context.config;
  const wantsPool = volume.devices !== undefined || volume.instanceStore !== undefined;
  const hasArray = context.previous?.array !== undefined;
  if (wantsPool !== hasArray) {
    logger.warn(
      { stateFile: context.paths.stateFile },
      `the config asks for ${wantsPool ? 'an md array' : 'a single device'}, but this node's ` +
        `volume is ${hasArray ? 'an md array' : 'a single device'}; keeping the volume set up ` +
        'before (remove the state file to set up another)',
    );
  }
}

/** What a dry run shows for an array it would build: raid10 keeps two copies of everything. */
function plannedArray(pool: Extract<Pool, { kind: 'array' }>): BlockDevice {
  const total = pool.members.reduce((sum, disk) => sum + disk.sizeBytes, 0);
  return {
    name: `md/${arrayName}`,
    path: arrayDevice,
    majorMinor: '',
    sizeBytes: pool.level === 'raid10' ? Math.floor(total / 2) : total,
    parent: undefined,
    partitions: [],
    holders: [],
    slaves: pool.members.map((disk) => disk.name),
    serial: undefined,
    model: undefined,
    backingFile: undefined,
  };
}

/**
 * Resolves what the config names (volume.device, volume.devices or volume.instanceStore) against
 * the machine's disks, polling while it names nothing yet: an EBS volume can attach, and udev can
 * create its mapping-name link, well into the boot. On timeout the error lists every disk seen.
 */
async function waitForPool(context: SetupContext, logger: Logger): Promise<Pool> {
  const { volume } = context.config;
  const { waitSeconds, label } = volume;
  const selectors = volume.devices ?? (volume.device === undefined ? [] : [volume.device]);
  const parsed = selectors.map((text) => parseSelector(text));
  // Only names and "auto" need the NVMe Identify data; reading it runs nvme-cli per disk.
  const identify = parsed.some(
    (selector) => selector.kind === 'mapping-name' || selector.kind === 'auto',
  )
    ? cacheIdentifyReader(createIdentifyReader(context.run))
    : undefined;
  const getSignatures = (disk: { path: string }) => probeSignatures(context.run, disk.path);
  const wanted =
    volume.instanceStore === undefined
      ? selectors.join(', ')
      : `the instance-store disks (${volume.instanceStore})`;
  const deadline = Date.now() + waitSeconds * 1000;
  let nextLog = 0;
  for (;;) {
    const inventory = await readInventory(context.host, { identify });
    try {
      return await selectPool(context, inventory, logger, { label, getSignatures });
    } catch (error) {
      if (!isMissingDevice(error)) {
        throw error;
      }

      if (Date.now() >= deadline) {
        const waited = waitSeconds > 0 ? ` (after waiting ${waitSeconds} s)` : '';
        throw new EnvironmentError(`${getErrorLine(error)}${waited}`, {
          cause: error,
          hint: 'check that the volume is attached, or raise volume.waitSeconds',
        });
      }

      if (Date.now() >= nextLog) {
        // What is still missing, without the list of every disk seen that the error carries.
        const missing = getErrorLine(error).split('; seen: ')[0];
        logger.info({ wanted, waitSeconds, missing }, `waiting for ${wanted}`);
        nextLog = Date.now() + 5000;
      }
    }

    await sleep(500);
  }
}

async function selectPool(
  context: SetupContext,
  inventory: Inventory,
  logger: Logger,
  options: ResolveOptions,
): Promise<Pool> {
  const { volume } = context.config;
  if (volume.instanceStore !== undefined) {
    const pool = selectInstanceStore(inventory, volume.instanceStore, {
      ...(volume.instanceStoreSerial === undefined
        ? {}
        : { serialPattern: volume.instanceStoreSerial }),
    });
    logger.info(
      { disks: pool.members.map((disk) => disk.path), mode: volume.instanceStore },
      'selected the instance-store disks',
    );
    return pool;
  }

  if (volume.devices !== undefined && volume.raid !== undefined) {
    return resolveDeviceList(inventory, volume.devices, volume.raid, options);
  }

  const selector = parseSelector(volume.device ?? 'auto');
  const found = await resolveSelector(inventory, selector, options);
  if (selector.kind !== 'path') {
    logger.info({ device: found.disk.path, via: found.via }, `resolved ${selector.text}`);
  }

  return { kind: 'single', disk: found.disk, members: [found.disk] };
}

/**
 * nodeadm builds its own array from the instance-store disks when its NodeConfig sets
 * localStorage, and binds it over /var/lib/containerd (and /var/lib/kubelet, /var/log/pods)
 * after ctrvol-setup has run. Either owner alone is fine; both means one mount hides the other's
 * store, so the conflict is refused before anything is touched.
 */
async function refuseSecondOwner(context: SetupContext): Promise<void> {
  const claims = await findLocalStorageClaims({
    userDataFile: context.paths.userDataFile,
    dropInDir: context.paths.nodeadmDropInDir,
  });
  for (const claim of claims) {
    const why = getOwnerConflict(claim, context.config.volume);
    if (why !== undefined) {
      throw new EnvironmentError(
        `${claim.source} holds a NodeConfig with spec.instance.localStorage ` +
          `(strategy ${claim.strategy}), and ctrvol is configured for the same storage: ${why}`,
        {
          hint:
            'give the disks one owner: either remove localStorage from the NodeConfig (with ' +
            'Karpenter, drop instanceStorePolicy from the EC2NodeClass) and let ctrvol set ' +
            'them up, or leave them to nodeadm and disable ctrvol-setup.service; nothing was ' +
            'changed',
        },
      );
    }
  }
}

/** Probes the device and refuses, before anything is changed, any device ctrvol must not touch. */
async function probeVolume(context: SetupContext, device: BlockDevice): Promise<Volume> {
  const { config, host, paths } = context;
  const { mountPoint, label, filesystem } = config.volume;
  const names = new Set([device.name, ...device.partitions]);
  const majorMinors = new Set([device.majorMinor]);
  const allMounts = readMountInfo(host);
  const mounts = allMounts.filter((entry) => majorMinors.has(entry.majorMinor));
  const refuse = (why: string, hint?: string) =>
    new EnvironmentError(`${device.path} ${why}`, hint === undefined ? {} : { hint });

  if (device.sizeBytes === 0) {
    throw refuse('has no capacity (0 bytes); is the medium attached?');
  }

  const rootNames = getRootDiskNames(host);
  if ([...names].some((name) => rootNames.has(name))) {
    throw refuse('holds the root filesystem; ctrvol never touches the root disk');
  }

  // A partition's disk counts too: a blank partition beside the root partition is still on the
  // root disk. And ctrvol takes whole disks only, so no other partition will do either.
  if (device.parent !== undefined) {
    throw refuse(
      rootNames.has(device.parent)
        ? `is a partition of ${device.parent}, the root disk; ctrvol never touches the root disk`
        : `is a partition of ${device.parent}; ctrvol uses whole, blank disks`,
    );
  }

  if (device.partitions.length > 0) {
    throw refuse(
      `has partitions (${device.partitions.join(', ')}); ctrvol uses whole, blank disks`,
    );
  }

  if (device.holders.length > 0) {
    throw refuse(`is in use by ${device.holders.join(', ')} (device mapper or RAID)`);
  }

  const swaps = getSwapDeviceNames(host);
  if ([...names].some((name) => swaps.has(name))) {
    throw refuse('is in use as swap');
  }

  // ctrvol's own binds of its ctrvol-bind folders are there too once the volume is set up.
  const foreignMount = mounts.find(
    (entry) =>
      entry.mountPoint !== mountPoint && entry.mountPoint !== paths.stagingDir && !isOwnBind(entry),
  );
  if (foreignMount !== undefined) {
    throw refuse(`is mounted at ${foreignMount.mountPoint}; ctrvol only mounts it itself`);
  }

  if (!mounts.some((entry) => entry.mountPoint === mountPoint)) {
    await checkMountPoint(mountPoint);
  }

  const occupant = getMountAt(allMounts, mountPoint);
  if (occupant !== undefined && !majorMinors.has(occupant.majorMinor)) {
    throw new EnvironmentError(
      `${mountPoint} already has ${occupant.source} (${occupant.fsType}) mounted on it`,
      { hint: 'another tool owns the mount point; unmount it or choose one owner' },
    );
  }

  // On a first run the device is most likely blank, and then its content is read too: beside the
  // signature probes rather than after them. All of it only reads.
  const sampling =
    context.previous === undefined ? sampleDeviceContent(context, device) : undefined;
  sampling?.catch(() => undefined);
  const signatures = await probeSignatures(context.run, device.path);
  const formatReason = await getFormatReason(context, device, signatures, sampling);
  const ours = signatures.label === label && isSupported(signatures.fsType);
  const foundByUuid =
    context.previous?.uuid !== undefined && signatures.uuid === context.previous.uuid;
  if (formatReason === undefined && !ours && !foundByUuid) {
    throw refuse(
      `carries ${describeSignatures(signatures)}; ctrvol formats only blank devices and reuses ` +
        `only filesystems labelled "${label}"`,
      "this looks like someone else's data: check volume.device",
    );
  }

  if (formatReason !== undefined && filesystem === 'xfs' && device.sizeBytes < xfsMinimumBytes) {
    throw new ConfigError(
      `volume.filesystem: got "xfs" for ${device.path} of ${formatBytes(device.sizeBytes)}; ` +
        'allowed: "xfs" on 300 MB or more, "ext4" below that',
    );
  }

  if (formatReason === undefined && signatures.fsType !== filesystem) {
    context.logger.warn(
      { found: signatures.fsType, configured: filesystem },
      "the volume already carries ctrvol's label with another filesystem; reusing it as it is",
    );
  }

  return { device, signatures, formatReason, mounts };
}

async function getFormatReason(
  context: SetupContext,
  device: BlockDevice,
  signatures: Signatures,
  sampling: Promise<ContentSample> | undefined,
): Promise<Volume['formatReason']> {
  // A mkfs cut off by a crash or kill -9 leaves a partial signature, or none and some of its
  // metadata. The intent record written just before it says that this exact device (serial and
  // size) was blank and is ctrvol's.
  const isInterrupted = async () => {
    const intent = await readJson<FormatIntent>(context.paths.formatIntentFile);
    return intent !== undefined && intent.identity === getDeviceIdentity(device);
  };

  if (!isBlank(signatures, device.partitions.length)) {
    return (await isInterrupted()) ? 'interrupted format' : undefined;
  }

  const { blank, content } = await checkContent(context, device, sampling);
  if (blank) {
    return 'blank';
  }

  if (await isInterrupted()) {
    return 'interrupted format';
  }

  throw new EnvironmentError(
    `${device.path} carries no signature blkid knows, but is not blank: ` +
      `${describeContent(content)}; ctrvol formats only blank devices`,
    {
      hint:
        "this looks like someone else's data: check volume.device; if the device is truly " +
        'unused, zero it (blkdiscard) and run again; nothing was changed',
    },
  );
}

function isSupported(fsType: string | undefined): boolean {
  return fsType === 'xfs' || fsType === 'ext4';
}

function describeSignatures(signatures: Signatures): string {
  const { fsType, label, uuid, partitionTable, all } = signatures;
  if (fsType !== undefined) {
    const named = label === undefined ? 'no label' : `label "${label}"`;
    return `a filesystem: ${fsType}, ${named}, UUID ${uuid ?? 'none'}`;
  }

  if (partitionTable !== undefined) {
    return `a partition table: ${partitionTable}`;
  }

  return `signatures of ${all.join(', ')}`;
}

/**
 * The mount point on the root disk must be a plain directory (or not exist yet). A symlink would
 * have the copy measured and verified through the link but mounted over its target; and a
 * .ctrvol or ctrvol-bind entry there would be taken for ctrvol's own once copied onto the volume.
 */
async function checkMountPoint(mountPoint: string): Promise<void> {
  const info = await lstat(mountPoint).catch(() => undefined);
  if (info === undefined) {
    return;
  }

  if (info.isSymbolicLink()) {
    throw new EnvironmentError(`${mountPoint} is a symlink`, {
      hint: 'set volume.mountPoint to the directory it points to; nothing was changed',
    });
  }

  if (!info.isDirectory()) {
    throw new EnvironmentError(`${mountPoint} exists and is not a directory`, {
      hint: 'move it aside or choose another volume.mountPoint; nothing was changed',
    });
  }

  for (const name of [volumeMetaDir, bindDir]) {
    if (
      await access(path.join(mountPoint, name)).then(
        () => true,
        () => false,
      )
    ) {
      throw new EnvironmentError(
        `${mountPoint} on the root disk holds a ${name} entry, ctrvol's own name on a volume`,
        { hint: 'was a ctrvol volume copied here? move that entry aside; nothing was changed' },
      );
    }
  }
}
