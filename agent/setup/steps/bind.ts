import { lstat, mkdir, readdir, realpath } from 'node:fs/promises';
import path from 'node:path';
import { EnvironmentError } from '../../errors.js';
import { getBindState } from '../../host/bind-mounts.js';
import {
  getMountAt,
  getMountsBeneath,
  readMountInfo,
  type MountEntry,
} from '../../host/mountinfo.js';
import type { Logger } from '../../log/logger.js';
import { checkRoom, clearUnfinishedCopy, copyAndVerify } from '../../preserve/copy.js';
import { measureTree, type TreeSize } from '../../preserve/space.js';
import { readJson, removeDurably, writeJsonDurably } from '../../state/files.js';
import { bindMarkerDir, getBindFolder, getBindMarkers } from '../../state/paths.js';
import { formatBytes } from '../../text.js';
import { act, getBindSourceSize, getVolume, type SetupContext } from '../context.js';
import { alreadyDone, changed, type Step } from '../step.js';
import { isSelinuxEnabled } from './mount.js';

/** Written on the volume once a bound directory's contents are on it and verified, then synced. */
export interface BindRecord {
  at: string;
  directory: string;
  bytes: number;
  inodes: number;
  verified: 'metadata' | 'content' | 'nothing to copy';
  sourceDigest?: string;
}

/**
 * Each directory of volume.bindMounts gets its folder on the volume (ctrvol-bind/ and the
 * directory's own path), receives what the root disk held there the first time, and is bound
 * from that folder at every boot, after the volume is mounted and before containerd and the
 * kubelet start.
 */
export const bindStep: Step = {
  name: 'bind',
  async run(context, logger) {
    const { bindMounts, mountPoint } = context.config.volume;
    const { device } = getVolume(context);
    const mounts = readMountInfo(context.host);
    const volumeMounted = getMountAt(mounts, mountPoint)?.majorMinor === device.majorMinor;
    if (volumeMounted) {
      await warnAboutLeftFolders(context, logger, mounts);
    }

    const pending = await checkBindTargets(context);
    if (pending.length === 0) {
      return alreadyDone(
        bindMounts.length === 0
          ? 'no directories to bind'
          : `${bindMounts.join(', ')} bound from the volume`,
      );
    }

    for (const directory of pending) {
      await carryOver(context, logger, directory, volumeMounted);
      await bind(context, logger, directory);
    }

    return changed(pending.join(', '));
  },
};

/**
 * The directories of volume.bindMounts not bound yet, after refusing, before anything is
 * changed, any that ctrvol must not bind over: something else mounted there, mounts beneath it
 * (pod volumes under a live /var/lib/kubelet), a symlink or a file. The quiesce step asks first,
 * before it stops anything; this step asks again, since a step must not trust an earlier look.
 */
export async function checkBindTargets(context: SetupContext): Promise<string[]> {
  const { device } = getVolume(context);
  const mounts = readMountInfo(context.host);
  const pending: string[] = [];
  const nothingChanged = 'nothing was changed';
  for (const directory of context.config.volume.bindMounts) {
    const state = getBindState(mounts, directory, device.majorMinor);
    if (state.kind === 'bound') {
      continue;
    }

    if (state.kind === 'occupied') {
      const { source, fsType } = state.mount;
      throw new EnvironmentError(
        `${directory} already has ${source} (${fsType}) mounted on it; ctrvol binds only over ` +
          'a plain directory',
        { hint: `unmount it, or take it out of volume.bindMounts; ${nothingChanged}` },
      );
    }

    const beneath = getMountsBeneath(mounts, directory);
    if (beneath.length > 0) {
      const where = beneath.map((entry) => entry.mountPoint);
      throw new EnvironmentError(
        `something is mounted beneath ${directory}: ${where.slice(0, 3).join(', ')}` +
          (where.length > 3 ? ` and ${where.length - 3} more` : ''),
        {
          hint:
            'its contents cannot be copied while in use: drain the node and reboot it, so that ' +
            `setup runs before the kubelet; ${nothingChanged}`,
        },
      );
    }

    await checkPlainDirectory(directory);
    pending.push(directory);
  }

  return pending;
}

/**
 * A symlink anywhere in the path would have the copy read through it, the bind land on its
 * target, and mountinfo (which shows the target) never show the directory as bound.
 */
async function checkPlainDirectory(directory: string): Promise<void> {
  const info = await lstat(directory).catch(() => undefined);
  if (info?.isSymbolicLink() === true) {
    throw new EnvironmentError(`${directory} is a symlink`, {
      hint: 'put the directory it points to in volume.bindMounts instead; nothing was changed',
    });
  }

  if (info !== undefined && !info.isDirectory()) {
    throw new EnvironmentError(`${directory} exists and is not a directory`, {
      hint: 'move it aside or take it out of volume.bindMounts; nothing was changed',
    });
  }

  let existing = directory;
  while ((await lstat(existing).catch(() => undefined)) === undefined) {
    existing = path.dirname(existing);
  }

  const real = await realpath(existing);
  if (real !== existing) {
    throw new EnvironmentError(`${directory} leads through a symlink (${existing} is ${real})`, {
      hint: 'name the real path in volume.bindMounts; nothing was changed',
    });
  }
}

/**
 * The directory's contents on the root disk go onto the volume once, and never again: after
 * the first verified copy the folder on the volume is the directory, whatever the root disk
 * still holds beneath it. A copy cut off part way has no record and is redone.
 */
async function carryOver(
  context: SetupContext,
  logger: Logger,
  directory: string,
  volumeMounted: boolean,
): Promise<void> {
  const { mountPoint } = context.config.volume;
  const folder = getBindFolder(directory);
  if (!volumeMounted) {
    // Only a dry run gets here: the mount step has not mounted the volume, so it cannot tell
    // whether an existing volume already has the folder.
    const source = await getBindSourceSize(context, directory);
    const what = source === null ? 'nothing' : formatBytes(source.bytes);
    const unless = getVolume(context).formatReason === undefined ? ' unless the volume has it' : '';
    await act(context, logger, `copy ${what} from ${directory} into ${folder}${unless}`, noop);
    return;
  }

  const destination = path.join(mountPoint, folder);
  const markers = getBindMarkers(directory);
  const record = await readJson<BindRecord>(path.join(mountPoint, markers.copied));
  if (record !== undefined && (await isDirectory(destination))) {
    logger.info(`${directory} was carried onto the volume on ${record.at}; not copying again`);
    return;
  }

  const source = await getBindSourceSize(context, directory);
  const what = source === null ? 'nothing' : formatBytes(source.bytes);
  await act(context, logger, `copy ${what} from ${directory} into ${folder}`, async () => {
    await clearUnfinishedCopy(
      destination,
      path.join(mountPoint, markers.copyStarted),
      {
        keep: new Set(),
        describe: `${folder} on the volume`,
        hint:
          'move that folder aside on the volume, or take the directory out of ' +
          'volume.bindMounts; nothing was deleted',
      },
      logger,
    );
    const written = await copyOnce(context, logger, directory, destination, source);
    await writeJsonDurably(path.join(mountPoint, markers.copied), written);
    await removeDurably(path.join(mountPoint, markers.copyStarted));
  });
}

async function copyOnce(
  context: SetupContext,
  logger: Logger,
  directory: string,
  destination: string,
  source: TreeSize | null,
): Promise<BindRecord> {
  const { mountPoint } = context.config.volume;
  const base = { at: new Date().toISOString(), directory, bytes: 0, inodes: 0 };
  await mkdir(destination, { recursive: true, mode: 0o755 });
  if (!(await isDirectory(directory))) {
    logger.info(`${directory} does not exist on the root disk: its folder starts empty`);
    return { ...base, verified: 'nothing to copy' };
  }

  if (source !== null) {
    await checkRoom(mountPoint, directory, source);
  }

  const { copyStarted } = getBindMarkers(directory);
  await writeJsonDurably(path.join(mountPoint, copyStarted), { at: base.at });
  // Even an empty directory is copied: its owner, mode, xattrs and SELinux label come along.
  const copied = await copyAndVerify(context.run, directory, destination, {
    content: context.verify === 'content',
  });
  logger.info(
    { entries: copied.manifest.size, verify: context.verify },
    `the copy of ${directory} matches its source`,
  );

  return {
    ...base,
    bytes: source?.bytes ?? 0,
    inodes: source?.inodes ?? 0,
    verified: context.verify,
    sourceDigest: copied.digest,
  };
}

/**
 * The bind gets a peer group of its own. A bind of a shared mount joins the volume's peer group,
 * and every pod volume the kubelet then mounts under /var/lib/kubelet would show up a second
 * time under containerd's root. Shared, because the kubelet needs its root directory shared for
 * mount propagation into pods.
 */
async function bind(context: SetupContext, logger: Logger, directory: string): Promise<void> {
  const { mountPoint } = context.config.volume;
  const folder = path.join(mountPoint, getBindFolder(directory));
  await act(context, logger, `bind ${folder} over ${directory}`, async () => {
    await mkdir(directory, { recursive: true, mode: 0o755 });
    await context.run.run('mount', ['--bind', folder, directory]);
    await context.run.run('mount', ['--make-private', directory]);
    await context.run.run('mount', ['--make-shared', directory]);
    if (await isSelinuxEnabled(context.host.sys)) {
      await context.run.run('restorecon', ['-F', directory], { packageHint: 'policycoreutils' });
    }
  });
}

/**
 * A directory taken out of volume.bindMounts is no longer bound at boot, and what the node wrote
 * there stays in its folder on the volume: nothing deletes it, and the operator is told where it
 * is and how large, at every run, until the folder is gone.
 */
async function warnAboutLeftFolders(
  context: SetupContext,
  logger: Logger,
  mounts: readonly MountEntry[],
): Promise<void> {
  const { device } = getVolume(context);
  const { bindMounts, mountPoint } = context.config.volume;
  const names = await readdir(path.join(mountPoint, bindMarkerDir)).catch(() => []);
  for (const name of names.filter((entry) => /(?<!\.copy-started)\.json$/.test(entry))) {
    const record = await readJson<BindRecord>(path.join(mountPoint, bindMarkerDir, name));
    const directory = record?.directory;
    if (directory === undefined || bindMounts.includes(directory)) {
      continue;
    }

    const folder = path.join(mountPoint, getBindFolder(directory));
    if (!(await isDirectory(folder))) {
      continue;
    }

    const size = await measureTree(context.run, folder);
    const stillBound =
      getBindState(mounts, directory, device.majorMinor).kind === 'bound'
        ? ' (it stays bound there until the next boot)'
        : '';
    logger.warn(
      { directory, folder, bytes: size.bytes },
      `${directory} is no longer in volume.bindMounts: its data stays on the volume in ` +
        `${folder} (${formatBytes(size.bytes)})${stillBound}; move it back to ${directory} ` +
        'if the node still needs it',
    );
  }
}

function isDirectory(directory: string): Promise<boolean> {
  return lstat(directory).then(
    (info) => info.isDirectory(),
    () => false,
  );
}

const noop = async () => undefined;
