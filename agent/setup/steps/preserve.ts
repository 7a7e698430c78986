import { existsSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { EnvironmentError, StepError } from '../../errors.js';
import { getMountAt, readMountInfo } from '../../host/mountinfo.js';
import type { Logger } from '../../log/logger.js';
import { buildManifest, compareManifests, getManifestDigest } from '../../preserve/manifest.js';
import { getFreeSpace, getNeededSpace } from '../../preserve/space.js';
import { readJson, removeDurably, writeJsonDurably } from '../../state/files.js';
import {
  copyStartedMarker,
  inServiceMarker,
  preservedMarker,
  volumeMetaDir,
} from '../../state/paths.js';
import { formatBytes } from '../../text.js';
import { act, getSourceSize, getVolume, type SetupContext } from '../context.js';
import { alreadyDone, changed, type Step } from '../step.js';
import { isMountedAtMountPoint } from './quiesce.js';

/** Written on the volume once the old store is on it and verified, then synced. */
export interface PreservedRecord {
  at: string;
  source: string;
  /** What du measured of the source: what stays hidden under the mount point unless reclaimed. */
  bytes: number;
  inodes: number;
  verified: 'metadata' | 'content' | 'nothing to copy' | 'preserve: false';
  reclaimed: boolean;
  /** A digest of the source's manifest, to tell whether it changed before the first mount. */
  sourceDigest?: string;
}

/** Written by the mount step the first time the volume goes into service at the mount point. */
export interface InServiceRecord {
  at: string;
}

export const preserveStep: Step = {
  name: 'preserve',
  async run(context, logger) {
    const { mountPoint } = context.config.volume;
    if (isMountedAtMountPoint(context)) {
      const record = await readJson<PreservedRecord>(path.join(mountPoint, preservedMarker));
      context.hiddenBytes = getHiddenBytes(record) ?? context.previous?.hiddenBytes;
      return alreadyDone(`the volume is already mounted at ${mountPoint}`);
    }

    const staging = context.paths.stagingDir;
    if (context.dryRun) {
      const source = await getSourceSize(context);
      const what = source === null ? 'nothing' : formatBytes(source.bytes);
      const unless =
        getVolume(context).formatReason === undefined ? ' unless the volume has it' : '';
      await act(context, logger, `copy ${what} from ${mountPoint} onto the volume${unless}`, noop);
      return changed();
    }

    await mountStaging(context, logger);
    try {
      const record = await readJson<PreservedRecord>(path.join(staging, preservedMarker));
      if (record !== undefined && (await isCopyStillGood(context, record, logger))) {
        context.hiddenBytes = getHiddenBytes(record);
        return alreadyDone(`the volume received ${mountPoint} on ${record.at}`);
      }

      const written = await copyOnce(context, logger);
      context.hiddenBytes = getHiddenBytes(written);
      return changed(`${written.verified}; ${formatBytes(written.bytes)}`);
    } finally {
      // A failed unmount must not hide the error that got us here; the next run reuses a
      // staging mount it finds left over.
      await context.run.run('umount', [staging]).catch((error: unknown) => {
        logger.warn({ err: error }, `could not unmount ${staging}; the next run reuses it`);
      });
    }
  },
};

const noop = async () => undefined;

/**
 * A copy is good until the volume goes into service. Before that (a run that copied but failed
 * to mount, say), the store on the root disk may have changed since, and the copy is redone
 * rather than mounted over newer data. Once the volume has been in service it is the store,
 * and what lies hidden on the root disk no longer matters.
 */
async function isCopyStillGood(
  context: SetupContext,
  record: PreservedRecord,
  logger: Logger,
): Promise<boolean> {
  const staging = context.paths.stagingDir;
  const inService = await readJson<InServiceRecord>(path.join(staging, inServiceMarker));
  if (inService !== undefined || record.verified === 'preserve: false') {
    return true;
  }

  const { mountPoint } = context.config.volume;
  const source = await getSourceSize(context);
  const digest =
    source === null ? undefined : getManifestDigest(await buildManifest(context.run, mountPoint));
  if (digest === record.sourceDigest) {
    return true;
  }

  logger.warn(
    { copiedAt: record.at },
    `${mountPoint} changed since it was copied, and the volume was never mounted; copying again`,
  );
  await writeJsonDurably(path.join(staging, copyStartedMarker), { at: record.at });
  await removeDurably(path.join(staging, preservedMarker));
  return false;
}

export const tooSmallHint =
  'attach a larger volume; nothing was copied and the original is untouched';

function getHiddenBytes(record: PreservedRecord | undefined): number | undefined {
  return record === undefined ? undefined : record.reclaimed ? 0 : record.bytes;
}

/** ctrvol's own staging mount may be left over from a run that was killed; it is reused. */
async function mountStaging(context: SetupContext, logger: Logger): Promise<void> {
  const { device, signatures } = getVolume(context);
  const staging = context.paths.stagingDir;
  const current = getMountAt(await readMountInfo(context.host), staging);
  if (current !== undefined && current.majorMinor === device.majorMinor) {
    logger.info({ staging }, 'reusing the staging mount left by an interrupted run');
    return;
  }

  await mkdir(staging, { recursive: true });
  await context.run.run('mount', ['-t', signatures.fsType ?? 'auto', device.path, staging]);
}

async function copyOnce(context: SetupContext, logger: Logger): Promise<PreservedRecord> {
  const { mountPoint, preserve, reclaimRootCopy } = context.config.volume;
  const staging = context.paths.stagingDir;
  const source = await getSourceSize(context);
  const base = {
    at: '',
    source: mountPoint,
    bytes: source?.bytes ?? 0,
    inodes: source?.inodes ?? 0,
  };

  if (!preserve || source === null) {
    const verified = preserve ? 'nothing to copy' : 'preserve: false';
    logger.info(
      preserve ? `${mountPoint} is empty` : 'preserve is off: the old store is not copied',
    );
    return markPreserved(context, { ...base, verified, reclaimed: false });
  }

  await clearInterruptedCopy(context, logger);
  const free = await getFreeSpace(staging);
  const needed = getNeededSpace(source);
  if (free.bytes < needed.bytes || free.inodes < needed.inodes) {
    throw new EnvironmentError(
      `the volume is too small for ${mountPoint}: it needs ${formatBytes(needed.bytes)} and ` +
        `${needed.inodes} inodes, it has ${formatBytes(free.bytes)} and ${free.inodes} free`,
      { hint: tooSmallHint },
    );
  }

  await writeJsonDurably(path.join(staging, copyStartedMarker), { at: new Date().toISOString() });
  logger.info(
    { bytes: source.bytes, inodes: source.inodes },
    `copying ${mountPoint} onto the volume`,
  );
  const content = context.verify === 'content';
  // cp as root keeps owners, modes, timestamps, hard links, holes, device nodes (overlay
  // whiteouts) and, with xattr named explicitly, fails rather than silently dropping any xattr:
  // trusted.overlay.*, security.capability, security.selinux and ACLs all live there.
  // The source is quiet (quiesce saw to that), so its manifest is read while cp runs.
  const copying = context.run
    .run('cp', [
      '--archive',
      '--preserve=all,xattr',
      '--one-file-system',
      '--sparse=auto',
      `${mountPoint}/.`,
      staging,
    ])
    // cp does not sync, and the marker must never reach the disk before the data it vouches for.
    .then(() => context.run.run('sync', ['--file-system', staging]));
  const [original] = await Promise.all([
    buildManifest(context.run, mountPoint, { content }),
    copying,
  ]);

  // mkfs.ext4 makes lost+found: it belongs to the volume, not to the copy, unless the source
  // had one too.
  const sourceHasLostFound = existsSync(path.join(mountPoint, 'lost+found'));
  const exclude = new Set(sourceHasLostFound ? [volumeMetaDir] : [volumeMetaDir, 'lost+found']);
  const copy = await buildManifest(context.run, staging, { content, exclude });
  const differences = compareManifests(original, copy);
  if (differences.length > 0) {
    throw new StepError(
      `the copy of ${mountPoint} does not match its source in ${differences.length} place(s): ` +
        differences.slice(0, 3).join('; '),
      { hint: 'the original is untouched; the next run copies again' },
    );
  }

  logger.info({ entries: original.size, verify: context.verify }, 'the copy matches its source');
  const record = await markPreserved(context, {
    ...base,
    verified: context.verify,
    reclaimed: false,
    sourceDigest: getManifestDigest(original),
  });

  if (reclaimRootCopy && (await reclaimSource(context, logger))) {
    return markPreserved(context, { ...record, reclaimed: true });
  }

  return record;
}

/**
 * A run killed during the copy leaves part of it on the volume, under a copy-started record.
 * Anything on a volume without that record or the completion marker was not put there by ctrvol,
 * and is never deleted.
 */
async function clearInterruptedCopy(context: SetupContext, logger: Logger): Promise<void> {
  const staging = context.paths.stagingDir;
  const entries = (await readdir(staging)).filter(
    (name) => name !== volumeMetaDir && name !== 'lost+found',
  );
  if (entries.length === 0) {
    return;
  }

  const started = await readJson<{ at: string }>(path.join(staging, copyStartedMarker));
  if (started === undefined) {
    throw new EnvironmentError(
      `the volume holds data ctrvol did not put there (${entries.slice(0, 3).join(', ')}…)`,
      { hint: 'empty the volume or point volume.device at another one; nothing was deleted' },
    );
  }

  logger.warn({ since: started.at }, 'removing a copy that an earlier run did not finish');
  for (const name of entries) {
    await rm(path.join(staging, name), { recursive: true, force: true });
  }
}

async function markPreserved(
  context: SetupContext,
  record: PreservedRecord,
): Promise<PreservedRecord> {
  const staging = context.paths.stagingDir;
  const written = { ...record, at: new Date().toISOString() };
  await writeJsonDurably(path.join(staging, preservedMarker), written);
  await removeDurably(path.join(staging, copyStartedMarker));

  return written;
}

/**
 * Frees the root disk only after the copy was verified and its marker is on the volume. The
 * copy is safe either way, so a failure here (an immutable file, say) is a warning, not a
 * failed setup; status then reports what is still hidden.
 */
async function reclaimSource(context: SetupContext, logger: Logger): Promise<boolean> {
  const { mountPoint } = context.config.volume;
  logger.info(`reclaiming the verified original under ${mountPoint} on the root disk`);
  try {
    for (const name of await readdir(mountPoint)) {
      await rm(path.join(mountPoint, name), { recursive: true, force: true });
    }

    return true;
  } catch (error) {
    logger.warn({ err: error }, `could not free all of ${mountPoint} on the root disk`);
    context.source = undefined;
    return false;
  }
}
