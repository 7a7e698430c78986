import { access, lstat } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { xfsMinimumBytes } from '../../config/schema.js';
import { ConfigError, EnvironmentError, getErrorLine } from '../../errors.js';
import { type BlockDevice, getBlockDevice, getSwapDeviceNames } from '../../host/block.js';
import { cacheIdentifyReader, createIdentifyReader } from '../../disks/identify.js';
import { getRootDiskNames, readInventory } from '../../disks/inventory.js';
import { isMissingDevice, parseSelector, resolveSelector } from '../../disks/selectors.js';
import { isOwnBind } from '../../host/bind-mounts.js';
import { getMountAt, readMountInfo } from '../../host/mountinfo.js';
import { isBlank, probeSignatures, type Signatures } from '../../host/signatures.js';
import type { Logger } from '../../log/logger.js';
import { formatBytes } from '../../text.js';
import { readJson } from '../../state/files.js';
import { bindDir, volumeMetaDir } from '../../state/paths.js';
import { readState } from '../../state/state.js';
import type { SetupContext, Volume } from '../context.js';
import { checked, type Step } from '../step.js';
import { getDeviceIdentity, type FormatIntent } from './format.js';

export const resolveStep: Step = {
  name: 'resolve',
  async run(context, logger) {
    // Read only now, under the lock: a run that waited for another must see what that one did.
    context.previous = await readState(context.paths.stateFile);
    const device = await findDevice(context, logger);
    const volume = await probeVolume(context, device);
    context.volume = volume;
    const { signatures } = volume;
    const what =
      signatures.fsType === undefined ? 'blank' : `${signatures.fsType} ${signatures.uuid}`;

    return checked(`${device.path}: ${what}, ${formatBytes(device.sizeBytes)}`);
  },
};

/**
 * A machine that was set up before is looked up by the UUID it recorded, because a raw name such
 * as /dev/nvme1n1 can point at another disk after a reboot. Only when that UUID is nowhere to be
 * found (a new instance-store disk after stop/start, a replaced volume) is the configured device
 * used.
 */
async function findDevice(context: SetupContext, logger: Logger): Promise<BlockDevice> {
  const uuid = context.previous?.uuid;
  if (uuid !== undefined) {
    const found = await context.run.run('blkid', ['-U', uuid], { okExitCodes: [2] });
    const devicePath = found.stdout.trim();
    if (found.exitCode === 0 && devicePath !== '') {
      logger.info({ uuid, device: devicePath }, 'found the recorded volume by UUID');
      return getBlockDevice(context.host, devicePath);
    }

    logger.warn({ uuid }, 'the recorded volume is gone; using the configured device');
  }

  return waitForSelector(context, logger);
}

/**
 * Resolves volume.device (a path, a mapping name, a volume id or "auto") against the machine's
 * disks, polling while it names nothing yet: an EBS volume can attach, and udev can create its
 * mapping-name link, well into the boot. On timeout the error lists every disk seen.
 */
async function waitForSelector(context: SetupContext, logger: Logger): Promise<BlockDevice> {
  const { device = 'auto', waitSeconds, label } = context.config.volume;
  const selector = parseSelector(device);
  // Only names and "auto" need the NVMe Identify data; reading it runs nvme-cli per disk.
  const identify =
    selector.kind === 'mapping-name' || selector.kind === 'auto'
      ? cacheIdentifyReader(createIdentifyReader(context.run))
      : undefined;
  const getSignatures = (disk: { path: string }) => probeSignatures(context.run, disk.path);
  const deadline = Date.now() + waitSeconds * 1000;
  let nextLog = 0;
  for (;;) {
    const inventory = await readInventory(context.host, { identify });
    try {
      const found = await resolveSelector(inventory, selector, { label, getSignatures });
      if (selector.kind !== 'path') {
        logger.info({ device: found.disk.path, via: found.via }, `resolved ${device}`);
      }

      return await getBlockDevice(context.host, found.disk.path);
    } catch (error) {
      if (!isMissingDevice(error)) {
        throw error;
      }

      if (Date.now() >= deadline) {
        throw new EnvironmentError(`${getErrorLine(error)} (after waiting ${waitSeconds} s)`, {
          cause: error,
          hint: 'check that the volume is attached, or raise volume.waitSeconds',
        });
      }

      if (Date.now() >= nextLog) {
        logger.info({ device, waitSeconds }, 'waiting for the device to appear');
        nextLog = Date.now() + 5000;
      }
    }

    await sleep(500);
  }
}

/** Probes the device and refuses, before anything is changed, any device ctrvol must not touch. */
async function probeVolume(context: SetupContext, device: BlockDevice): Promise<Volume> {
  const { config, host, paths } = context;
  const { mountPoint, label, filesystem } = config.volume;
  const names = new Set([device.name, ...device.partitions]);
  const majorMinors = new Set([device.majorMinor]);
  const allMounts = await readMountInfo(host);
  const mounts = allMounts.filter((entry) => majorMinors.has(entry.majorMinor));
  const refuse = (why: string, hint?: string) =>
    new EnvironmentError(`${device.path} ${why}`, hint === undefined ? {} : { hint });

  if (device.sizeBytes === 0) {
    throw refuse('has no capacity (0 bytes); is the medium attached?');
  }

  const rootNames = await getRootDiskNames(host);
  if ([...names].some((name) => rootNames.has(name))) {
    throw refuse('holds the root filesystem; ctrvol never touches the root disk');
  }

  if (device.partitions.length > 0) {
    throw refuse(
      `has partitions (${device.partitions.join(', ')}); ctrvol uses whole, blank disks`,
    );
  }

  if (device.holders.length > 0) {
    throw refuse(`is in use by ${device.holders.join(', ')} (device mapper or RAID)`);
  }

  const swaps = await getSwapDeviceNames(host);
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

  const signatures = await probeSignatures(context.run, device.path);
  const formatReason = await getFormatReason(context, device, signatures);
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
): Promise<Volume['formatReason']> {
  if (isBlank(signatures, device.partitions.length)) {
    return 'blank';
  }

  // A mkfs cut off by a crash or kill -9 leaves a partial signature. The intent record written
  // just before it says that this exact device (serial and size) was blank and is ctrvol's.
  const intent = await readJson<FormatIntent>(context.paths.formatIntentFile);
  return intent !== undefined && intent.identity === getDeviceIdentity(device)
    ? 'interrupted format'
    : undefined;
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
