import { readdir, rm } from 'node:fs/promises';
import { EnvironmentError, StepError } from '../errors.js';
import type { Runner } from '../exec.js';
import type { Logger } from '../log/logger.js';
import { readJson } from '../state/files.js';
import { formatBytes } from '../text.js';
import { buildManifest, compareManifests, getManifestDigest, type Manifest } from './manifest.js';
import { getFreeSpace, getNeededSpace, type TreeSize } from './space.js';

export const tooSmallHint =
  'attach a larger volume; nothing was copied and the original is untouched';

/** Refuses a copy that would not fit, with the margin getNeededSpace keeps, before it starts. */
export async function checkRoom(destination: string, source: string, size: TreeSize) {
  const free = await getFreeSpace(destination);
  const needed = getNeededSpace(size);
  if (free.bytes < needed.bytes || free.inodes < needed.inodes) {
    throw new EnvironmentError(
      `the volume is too small for ${source}: it needs ${formatBytes(needed.bytes)} and ` +
        `${needed.inodes} inodes, it has ${formatBytes(free.bytes)} and ${free.inodes} free`,
      { hint: tooSmallHint },
    );
  }
}

export interface CopyOptions {
  content: boolean;
  /** Top-level names in the destination that are not part of the copy (ctrvol's own records). */
  exclude?: ReadonlySet<string>;
}

/** What a verified copy leaves to record: the source's manifest and its digest. */
export interface VerifiedCopy {
  manifest: Manifest;
  /** Tells a later run whether the source moved on since it was copied. */
  digest: string;
}

/**
 * Copies what is in `source` into `destination` and proves the copy complete, or throws. Both
 * the old store and every bound directory go through here, so there is one definition of a
 * good copy.
 */
export async function copyAndVerify(
  run: Runner,
  source: string,
  destination: string,
  options: CopyOptions,
): Promise<VerifiedCopy> {
  const { content, exclude } = options;
  // cp as root keeps owners, modes, timestamps, hard links, holes, device nodes (overlay
  // whiteouts) and, with xattr named explicitly, fails rather than silently dropping any xattr:
  // trusted.overlay.*, security.capability, security.selinux and ACLs all live there.
  // The source is quiet (quiesce saw to that), so its manifest is read while cp runs.
  const copying = run.run('cp', [
    '--archive',
    '--preserve=all,xattr',
    '--one-file-system',
    '--sparse=auto',
    `${source}/.`,
    destination,
  ]);
  // Its digest (a hash over every entry) is taken meanwhile too, rather than after the sync.
  const reading = buildManifest(run, source, { content }).then((manifest) => ({
    manifest,
    digest: getManifestDigest(manifest),
  }));
  const [original] = await Promise.all([reading, copying]);

  // cp does not sync, and a marker must never reach the disk before the data it vouches for. The
  // copy's manifest is read while sync writes the data out: neither needs the other, the
  // manifest reads what the kernel holds either way, and sync is most of the wait.
  const [differences] = await Promise.all([
    buildManifest(run, destination, {
      content,
      ...(exclude === undefined ? {} : { exclude }),
    }).then((copy) => compareManifests(original.manifest, copy)),
    run.run('sync', ['--file-system', destination]),
  ]);
  if (differences.length > 0) {
    throw new StepError(
      `the copy of ${source} does not match its source in ${differences.length} place(s): ` +
        differences.slice(0, 3).join('; '),
      { hint: 'the original is untouched; the next run copies again' },
    );
  }

  return original;
}

/**
 * A run killed during a copy leaves part of it behind, under a copy-started record. Anything in
 * the destination without that record was not put there by ctrvol, and is never deleted.
 * Returns whether there was an unfinished copy to remove.
 */
export async function clearUnfinishedCopy(
  destination: string,
  startedRecord: string,
  options: { keep: ReadonlySet<string>; describe: string; hint: string },
  logger: Logger,
): Promise<boolean> {
  const entries = (await readdir(destination).catch(() => [])).filter(
    (name) => !options.keep.has(name),
  );
  if (entries.length === 0) {
    return false;
  }

  const started = await readJson<{ at: string }>(startedRecord);
  if (started === undefined) {
    throw new EnvironmentError(
      `${options.describe} holds data ctrvol did not put there (${entries.slice(0, 3).join(', ')}…)`,
      { hint: options.hint },
    );
  }

  logger.warn({ since: started.at }, 'removing a copy that an earlier run did not finish');
  for (const name of entries) {
    await rm(`${destination}/${name}`, { recursive: true, force: true });
  }

  return true;
}
