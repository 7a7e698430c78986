import { EnvironmentError } from '../../errors.js';
import { findShims, isSocketLive } from '../../host/containerd.js';
import { getMountsBeneath, readMountInfo } from '../../host/mountinfo.js';
import { isUnitActive } from '../../host/systemd.js';
import { dependentUnits } from '../../systemd/units.js';
import { act, forgetSourceSize, getVolume, type SetupContext } from '../context.js';
import { alreadyDone, changed, type Step } from '../step.js';
import { checkBindTargets } from './bind.js';

/**
 * Nothing may write to the old store while it is copied, and nothing may be left holding files
 * under the mount point when the volume is mounted over it. The same holds for a directory about
 * to be bound (a bindMounts entry added to a node already set up): the kubelet writes there.
 */
export const quiesceStep: Step = {
  name: 'quiesce',
  async run(context, logger) {
    const { mountPoint } = context.config.volume;
    // Refused here, before anything is stopped: a directory ctrvol must not bind over.
    const pendingBinds = await checkBindTargets(context);
    if (isMountedAtMountPoint(context) && pendingBinds.length === 0) {
      return alreadyDone(`the volume is already mounted at ${mountPoint}`);
    }

    if (context.systemd) {
      for (const unit of dependentUnits) {
        if (await isUnitActive(context.run, unit)) {
          await act(context, logger, `stop ${unit}`, async () => {
            await context.run.run('systemctl', ['stop', unit]);
          });
          context.stoppedUnits.push(unit);
        }
      }
    }

    await checkNothingRuns(context);
    if (context.stoppedUnits.length > 0) {
      // containerd writes as it stops; the store is measured again as it is now.
      forgetSourceSize(context);
    }

    return context.stoppedUnits.length === 0
      ? alreadyDone('nothing uses the mount point')
      : changed(`stopped ${context.stoppedUnits.join(', ')}`);
  },
};

export function isMountedAtMountPoint(context: SetupContext): boolean {
  const { mounts } = getVolume(context);
  return mounts.some((entry) => entry.mountPoint === context.config.volume.mountPoint);
}

/**
 * Where systemd is not PID 1 (a container, a user-data run under another init) ctrvol cannot stop
 * containerd itself, but it still refuses to copy a store that a live containerd is writing.
 */
async function checkNothingRuns(context: SetupContext): Promise<void> {
  const { socket } = context.config.containerd;
  const { mountPoint } = context.config.volume;
  const stopFirst = 'stop containerd and the kubelet, then run ctrvol setup again';

  if (!context.dryRun || context.stoppedUnits.length === 0) {
    if (await isSocketLive(socket)) {
      throw new EnvironmentError(`containerd is running on ${socket}`, { hint: stopFirst });
    }

    const shims = findShims(context.host.proc, socket);
    if (shims.length > 0) {
      throw new EnvironmentError(
        `containers are still running (shim pids ${shims.join(', ')}); a copy of live overlays ` +
          'is not a copy',
        { hint: 'stop every pod on this node, then run ctrvol setup again' },
      );
    }
  }

  const beneath = getMountsBeneath(readMountInfo(context.host), mountPoint);
  if (beneath.length > 0) {
    const where = beneath.map((entry) => entry.mountPoint).join(', ');
    throw new EnvironmentError(`something is mounted beneath ${mountPoint}: ${where}`, {
      hint: stopFirst,
    });
  }
}
