import type { Config, Filesystem } from '../config/schema.js';
import type { Runner } from '../exec.js';
import { getDiskKind } from '../disks/inventory.js';
import type { BlockDevice } from '../host/block.js';
import { type ContentSample, isBlankContent, sampleContent } from '../host/content.js';
import { getHostDevPath } from '../host/host.js';
import type { Host } from '../host/host.js';
import type { HeldLock } from '../host/lock.js';
import { getMountAt, readMountInfo, type MountEntry } from '../host/mountinfo.js';
import type { Signatures } from '../host/signatures.js';
import type { Logger } from '../log/logger.js';
import { measureSource, type TreeSize } from '../preserve/space.js';
import type { Paths } from '../state/paths.js';
import type { ArrayRecord, SetupState } from '../state/state.js';

export type VerifyMode = 'metadata' | 'content';

/** What the resolve step learned about the volume, read by every later step. */
export interface Volume {
  device: BlockDevice;
  signatures: Signatures;
  /** Why the device may be formatted, when it may: it is blank, or ctrvol's own mkfs was cut off. */
  formatReason: 'blank' | 'interrupted format' | undefined;
  /** This run made the filesystem, to the device's size as probed. */
  formatted?: boolean;
  /** Where the volume is mounted now, if anywhere (only ctrvol's own places get this far). */
  mounts: MountEntry[];
}

/** Everything a setup run carries from step to step. */
export interface SetupContext {
  config: Config;
  paths: Paths;
  host: Host;
  run: Runner;
  logger: Logger;
  dryRun: boolean;
  verify: VerifyMode;
  /** True when systemd is PID 1, so units can be stopped, started and reloaded. */
  systemd: boolean;
  /** What the last successful run recorded, if this machine was set up before. */
  previous: SetupState | undefined;
  lock: HeldLock | undefined;
  volume: Volume | undefined;
  /** The md array under the volume, when the config pools several disks. */
  array: ArrayRecord | undefined;
  /** Units stopped by this run, to be started again at the end (or after a failure). */
  stoppedUnits: string[];
  /**
   * What lies on the root disk at the mount point and at each volume.bindMounts directory,
   * measured once per run (see measureOnce); null where nothing does.
   */
  sourceSizes: Map<string, Promise<TreeSize | null>>;
  /** Bytes of the old store left under the mount point, as the preserve step measured them. */
  hiddenBytes: number | undefined;
  /** What a dry run would have done, in order. */
  plan: string[];
}

/** The volume as resolved; a step that runs after resolve may rely on it being there. */
export function getVolume(context: SetupContext): Volume {
  if (context.volume === undefined) {
    throw new Error('the resolve step has not run');
  }

  return context.volume;
}

/**
 * The filesystem on the volume, which is not always volume.filesystem: ctrvol reuses a volume of
 * its own label whatever type it carries. Before the format step has made one (a dry run on a
 * blank device), it is the type that step would make.
 */
export function getVolumeFilesystem(context: SetupContext): Filesystem {
  const { fsType } = getVolume(context).signatures;
  return fsType === 'ext4' || fsType === 'xfs' ? fsType : context.config.volume.filesystem;
}

/**
 * Every change a step makes goes through here. A dry run records what would happen and does
 * nothing, so that `--dry-run` prints the same plan a real run would follow.
 */
export async function act(
  context: SetupContext,
  logger: Logger,
  description: string,
  action: () => Promise<void>,
): Promise<void> {
  if (context.dryRun) {
    context.plan.push(description);
    logger.info(`would ${description}`);
    return;
  }

  logger.info(description);
  await action();
}

/**
 * The size of what lies at a directory on the root disk, measured once per run: the room check
 * before mkfs and the copy read the same figure. The old store at the mount point is measured
 * from the start of the resolve step when nothing is mounted there yet (measureSourceEarly), and
 * again after quiesce when that stopped containerd, which may write as it stops (forgetSize).
 */
function measureOnce(context: SetupContext, directory: string): Promise<TreeSize | null> {
  let size = context.sourceSizes.get(directory);
  if (size === undefined) {
    size = measureSource(context.run, directory);
    context.sourceSizes.set(directory, size);
  }

  return size;
}

/** The old store at the mount point. */
export function getSourceSize(context: SetupContext): Promise<TreeSize | null> {
  return measureOnce(context, context.config.volume.mountPoint);
}

/** What lies at a volume.bindMounts directory. */
export function getBindSourceSize(
  context: SetupContext,
  directory: string,
): Promise<TreeSize | null> {
  return measureOnce(context, directory);
}

/** The old store changed (or may have) since it was measured: the next ask measures it again. */
export function forgetSourceSize(context: SetupContext): void {
  context.sourceSizes.delete(context.config.volume.mountPoint);
}

/**
 * Starts measuring the old store while the device is probed: du reads the root disk and the
 * probes read the device, and the format step waits for the figure before mkfs. Nothing is
 * measured when a filesystem is mounted at the mount point (a node already set up: du would walk
 * the whole volume) or when nothing is to be copied. A failure surfaces where the figure is used;
 * a run refused before that never asks for it.
 */
export function measureSourceEarly(context: SetupContext): void {
  const { mountPoint, preserve } = context.config.volume;
  if (!preserve || getMountAt(readMountInfo(context.host), mountPoint) !== undefined) {
    return;
  }

  getSourceSize(context).catch(() => undefined);
}

export function sampleDeviceContent(
  context: SetupContext,
  device: BlockDevice,
): Promise<ContentSample> {
  return sampleContent(getHostDevPath(context.host, device.path), device.sizeBytes);
}

/**
 * Whether a device that carries no signature is blank: zeros anywhere, noise only on an
 * instance-store disk (as the config or the disk's NVMe model says). The sample is read here
 * unless the caller already started reading it.
 */
export async function checkContent(
  context: SetupContext,
  device: BlockDevice,
  sampling: Promise<ContentSample> = sampleDeviceContent(context, device),
): Promise<{ blank: boolean; content: ContentSample }> {
  const content = await sampling;
  const instanceStore =
    context.config.volume.instanceStore !== undefined ||
    getDiskKind(device.model) === 'instance-store';
  return { blank: isBlankContent(content, instanceStore), content };
}
