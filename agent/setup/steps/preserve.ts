import { existsSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { getMountAt, readMountInfo } from '../../host/mountinfo.js';
import type { Logger } from '../../log/logger.js';
import { checkRoom, clearUnfinishedCopy, copyAndVerify } from '../../preserve/copy.js';
import { buildManifest, getManifestDigest } from '../../preserve/manifest.js';
import { readJson, removeDurably, writeJsonDurably, writeJsonUnsynced } from '../../state/files.js';
import {
  bindDir,
  copyStartedMarker,
  inServiceMarker,
  preservedMarker,
  volumeMetaDir,
} from '../../state/paths.js';
import { formatBytes } from '../../text.js';
import { act, forgetSourceSize, getSourceSize, getVolume, type SetupContext } from '../context.js';
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
  /**
   * Set before reclaimRootCopy deletes anything: from then on the original on the root disk may
   * be partly or wholly gone, and this copy is the store whatever the root disk holds.
   */
  reclaimStarted?: boolean;
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
      const record = await readPreserved(mountPoint);
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
      const record = await readPreserved(staging);
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

  // A reclaim that began (and maybe failed on one immutable file, or was killed) left the root
  // disk with only part of the store: comparing with it would throw away the one whole copy.
  if (record.reclaimStarted === true || record.reclaimed) {
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

/**
 * The preserved marker on a mounted volume. One that does not parse was cut off by a crash
 * before the unmount wrote it out (markPreserved syncs it only then): it counts as no marker.
 */
async function readPreserved(volumeTop: string): Promise<PreservedRecord | undefined> {
  return readJson<PreservedRecord>(path.join(volumeTop, preservedMarker)).catch(
    (error: unknown) => {
      if (error instanceof SyntaxError) {
        return undefined;
      }

      throw error;
    },
  );
}

function getHiddenBytes(record: PreservedRecord | undefined): number | undefined {
  return record === undefined ? undefined : record.reclaimed ? 0 : record.bytes;
}

/** ctrvol's own staging mount may be left over from a run that was killed; it is reused. */
async function mountStaging(context: SetupContext, logger: Logger): Promise<void> {
  const { device, signatures } = getVolume(context);
  const staging = context.paths.stagingDir;
  const current = getMountAt(readMountInfo(context.host), staging);
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
  await checkRoom(staging, mountPoint, source);

  await writeJsonDurably(path.join(staging, copyStartedMarker), { at: new Date().toISOString() });
  logger.info(
    { bytes: source.bytes, inodes: source.inodes },
    `copying ${mountPoint} onto the volume`,
  );
  // mkfs.ext4 makes lost+found: it belongs to the volume, not to the copy, unless the source
  // had one too. The bound folders are not part of the old store either.
  const sourceHasLostFound = existsSync(path.join(mountPoint, 'lost+found'));
  const ownNames = [volumeMetaDir, bindDir];
  const exclude = new Set(sourceHasLostFound ? ownNames : [...ownNames, 'lost+found']);
  const copied = await copyAndVerify(context.run, mountPoint, staging, {
    content: context.verify === 'content',
    exclude,
  });

  logger.info(
    { entries: copied.manifest.size, verify: context.verify },
    'the copy matches its source',
  );
  const record = await markPreserved(
    context,
    {
      ...base,
      verified: context.verify,
      reclaimed: false,
      ...(reclaimRootCopy ? { reclaimStarted: true } : {}),
      sourceDigest: copied.digest,
    },
    // The original may go only once the marker saying the copy is whole, and is the store from
    // now on, is surely on disk.
    { durable: reclaimRootCopy },
  );

  if (reclaimRootCopy && (await reclaimSource(context, logger))) {
    // Durable too: a torn marker now would find no copy-started record beside it.
    return markPreserved(context, { ...record, reclaimed: true }, { durable: true });
  }

  return record;
}

/** ctrvol's records, its bound folders and mkfs's lost+found are never part of the copy. */
async function clearInterruptedCopy(context: SetupContext, logger: Logger): Promise<void> {
  const staging = context.paths.stagingDir;
  await clearUnfinishedCopy(
    staging,
    path.join(staging, copyStartedMarker),
    {
      keep: new Set([volumeMetaDir, bindDir, 'lost+found']),
      describe: 'the volume',
      hint: 'empty the volume or point volume.device at another one; nothing was deleted',
    },
    logger,
  );
}

/**
 * Records that the volume holds the old store. When the original is about to be deleted
 * (`durable`), the marker is on the disk before this returns. Otherwise nothing is synced here:
 * the staging unmount that follows writes the marker out, and until then the copy-started record
 * stays beside it, so a crash in between finds no marker, or a torn one (see readPreserved), next
 * to that record and copies again from the untouched original. The mount step removes the
 * copy-started record once the volume is in service.
 */
async function markPreserved(
  context: SetupContext,
  record: PreservedRecord,
  options: { durable: boolean } = { durable: false },
): Promise<PreservedRecord> {
  const staging = context.paths.stagingDir;
  const written = { ...record, at: new Date().toISOString() };
  const marker = path.join(staging, preservedMarker);
  if (options.durable) {
    await writeJsonDurably(marker, written);
    await removeDurably(path.join(staging, copyStartedMarker));
  } else {
    await writeJsonUnsynced(marker, written);
  }

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
    forgetSourceSize(context);
    return false;
  }
}
