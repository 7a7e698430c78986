import { getErrorLine } from '../../errors.js';
import { readBlockDevice } from '../../host/block.js';
import { describeGrowth, growIfDeviceGrew } from '../../host/grow.js';
import { getMountAt, readMountInfo } from '../../host/mountinfo.js';
import { act, getVolume } from '../context.js';
import { alreadyDone, changed, checked, type StepOutcome, type Step } from '../step.js';

/** An EBS volume enlarged since it was formatted gets its filesystem grown to match, online. */
export const growStep: Step = {
  name: 'grow',
  async run(context, logger) {
    const { device, signatures, formatted } = getVolume(context);
    const { mountPoint } = context.config.volume;
    const mount = getMountAt(readMountInfo(context.host), mountPoint);
    if (mount === undefined || mount.majorMinor !== device.majorMinor) {
      return checked('the volume is not mounted yet (dry run): its size is checked once it is');
    }

    // Read afresh: the device may have grown since it was probed (losetup -c, ModifyVolume).
    const { sizeBytes } = readBlockDevice(context.host, device.name);
    if (formatted === true && sizeBytes === device.sizeBytes) {
      return alreadyDone('the filesystem was made to fill its device in this run');
    }

    const options = {
      fsType: signatures.fsType ?? context.config.volume.filesystem,
      device: device.path,
      mountPoint,
      deviceBytes: sizeBytes,
    };
    let outcome: StepOutcome = alreadyDone('the filesystem fills its device');
    const description = `compare the filesystem on ${device.path} with its device`;
    await act(context, logger, description, async () => {
      // The volume works at its old size: a failed growth is a warning, never a reason to keep
      // containerd down. (Online ext4 growth needs CAP_SYS_RESOURCE, which some sandboxes drop.)
      try {
        const result = await growIfDeviceGrew(context.run, options);
        if (result.grown) {
          const sizes = { beforeBytes: result.beforeBytes, afterBytes: result.afterBytes };
          logger.info(sizes, describeGrowth(result));
          outcome = changed();
        }
      } catch (error) {
        logger.warn(
          { err: getErrorLine(error) },
          'could not grow the filesystem; it keeps its size',
        );
        outcome = checked('the filesystem could not be grown');
      }
    });

    return outcome;
  },
};
