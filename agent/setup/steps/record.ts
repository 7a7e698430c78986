import { isDeepStrictEqual } from 'node:util';
import { writeState, type SetupState } from '../../state/state.js';
import { act, getVolume, getVolumeFilesystem } from '../context.js';
import { alreadyDone, changed, type Step } from '../step.js';

export const recordStep: Step = {
  name: 'record',
  async run(context, logger) {
    const { device, signatures } = getVolume(context);
    const { label, mountPoint, bindMounts } = context.config.volume;
    const previous = context.previous;
    const sameVolume = previous?.uuid === signatures.uuid;
    const state: SetupState = {
      version: 1,
      uuid: signatures.uuid ?? '',
      device: device.path,
      filesystem: getVolumeFilesystem(context),
      label,
      mountPoint,
      setupAt: sameVolume && previous !== undefined ? previous.setupAt : new Date().toISOString(),
      hiddenBytes: context.hiddenBytes ?? previous?.hiddenBytes ?? 0,
      // Left out when empty, so that a record written before bind mounts existed still matches.
      ...(bindMounts.length > 0 ? { bindMounts } : {}),
      ...(context.array === undefined ? {} : { array: context.array }),
    };
    if (isDeepStrictEqual(state, previous)) {
      return alreadyDone(`${context.paths.stateFile} is up to date`);
    }

    const what = state.uuid === '' ? 'the new UUID' : `UUID ${state.uuid}`;
    await act(context, logger, `record ${what} in ${context.paths.stateFile}`, () =>
      writeState(context.paths.stateFile, state),
    );

    return changed();
  },
};
