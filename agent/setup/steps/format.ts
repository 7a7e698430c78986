import type { Filesystem } from '../../config/schema.js';
import { EnvironmentError, StepError } from '../../errors.js';
import type { BlockDevice } from '../../host/block.js';
import { probeNewFilesystem } from '../../host/signatures.js';
import { removeDurably, writeJsonDurably } from '../../state/files.js';
import { tooSmallHint } from '../../preserve/copy.js';
import { estimateUsableBytes, getNeededSpace, type TreeSize } from '../../preserve/space.js';
import { formatBytes } from '../../text.js';
import { act, getBindSourceSize, getSourceSize, getVolume, type SetupContext } from '../context.js';
import { alreadyDone, changed, type Step } from '../step.js';

/** Written under /var/lib/ctrvol before mkfs starts, and removed once the new filesystem probes. */
export interface FormatIntent {
  identity: string;
  device: string;
  filesystem: Filesystem;
  startedAt: string;
}

/**
 * What stays true of a disk across renames: its serial (NVMe, virtio) or, for a loop device, its
 * backing file, together with its size.
 */
export function getDeviceIdentity(device: BlockDevice): string {
  const id = device.serial ?? device.backingFile ?? device.name;
  return `${id}@${device.sizeBytes}`;
}

// The fast flags: no discard pass over the whole device (fresh EBS and instance-store disks are
// already trimmed), and ext4's inode tables initialised lazily after mount. -f / -F because the
// device has been proven blank (or ctrvol's own half-made filesystem), and mkfs must never stop
// to ask when a random-data "signature" confuses it.
function getMkfsCommand(filesystem: Filesystem, label: string, device: string): string[] {
  return filesystem === 'xfs'
    ? ['mkfs.xfs', '-f', '-K', '-L', label, device]
    : ['mkfs.ext4', '-F', '-q', '-E', 'nodiscard,lazy_itable_init=1', '-L', label, device];
}

export const formatStep: Step = {
  name: 'format',
  async run(context, logger) {
    const volume = getVolume(context);
    const { device, formatReason } = volume;
    if (formatReason === undefined) {
      return alreadyDone(`${device.path} already carries ${volume.signatures.fsType}`);
    }

    const { filesystem, label } = context.config.volume;
    const intent: FormatIntent = {
      identity: getDeviceIdentity(device),
      device: device.path,
      filesystem,
      startedAt: new Date().toISOString(),
    };
    await checkRoomForSource(context, device);
    const [command, ...args] = getMkfsCommand(filesystem, label, device.path) as [string];
    await act(
      context,
      logger,
      `format ${device.path} (${formatReason}) as ${filesystem}`,
      async () => {
        await writeJsonDurably(context.paths.formatIntentFile, intent);
        if (volume.signatures.all.length > 0) {
          // A false partition table, or ctrvol's own half-made filesystem: erase it so that no
          // stale signature outlives mkfs.
          await context.run.run('wipefs', ['--all', device.path]);
        }

        await context.run.run(command, args, {
          packageHint: filesystem === 'xfs' ? 'xfsprogs' : 'e2fsprogs',
        });
        const signatures = await probeNewFilesystem(context.run, device.path);
        if (signatures.fsType !== filesystem || signatures.label !== label) {
          throw new StepError(
            `${device.path} does not probe as ${filesystem} "${label}" after mkfs`,
          );
        }

        volume.signatures = signatures;
        volume.formatReason = undefined;
        volume.formatted = true;
        await removeDurably(context.paths.formatIntentFile);
      },
    );

    return changed(
      volume.signatures.uuid === undefined ? undefined : `UUID ${volume.signatures.uuid}`,
    );
  },
};

/**
 * A device far too small for what it is to receive (the old store and every bindMounts
 * directory) is refused before mkfs, so it stays blank.
 */
async function checkRoomForSource(context: SetupContext, device: BlockDevice): Promise<void> {
  const { mountPoint, bindMounts, preserve, filesystem } = context.config.volume;
  const parts: { directory: string; size: TreeSize }[] = [];
  const source = preserve ? await getSourceSize(context) : null;
  if (source !== null) {
    parts.push({ directory: mountPoint, size: source });
  }

  for (const directory of bindMounts) {
    const size = await getBindSourceSize(context, directory);
    if (size !== null) {
      parts.push({ directory, size });
    }
  }

  if (parts.length === 0) {
    return;
  }

  const total = parts.reduce(
    (sum, { size }) => ({ bytes: sum.bytes + size.bytes, inodes: sum.inodes + size.inodes }),
    { bytes: 0, inodes: 0 },
  );

  const needed = getNeededSpace(total).bytes;
  const usable = estimateUsableBytes(device.sizeBytes, filesystem);
  if (needed > usable) {
    throw new EnvironmentError(
      `${device.path} is too small for ${parts.map((part) => part.directory).join(' and ')}: ` +
        `it needs ${formatBytes(needed)}, a ${formatBytes(device.sizeBytes)} device holds about ` +
        formatBytes(usable),
      { hint: tooSmallHint },
    );
  }
}
