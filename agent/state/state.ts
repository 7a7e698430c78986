import type { Filesystem } from '../config/schema.js';
import type { RaidLevel } from '../disks/selectors.js';
import { EnvironmentError } from '../errors.js';
import { readJson, writeJsonDurably } from './files.js';

/** What `ctrvol setup` leaves in /var/lib/ctrvol/state.json, and `ctrvol status` reads. */
export interface SetupState {
  version: 1;
  uuid: string;
  /** The device path at the time of setup. It may name another disk after a reboot. */
  device: string;
  filesystem: Filesystem;
  label: string;
  mountPoint: string;
  /** When the volume was first set up on this machine. */
  setupAt: string;
  /** Bytes of the old store still lying under the mount point on the root disk. */
  hiddenBytes: number;
  /** The directories bound from the volume's ctrvol-bind folder; absent when there are none. */
  bindMounts?: string[];
  /** The md array the filesystem sits on, when ctrvol pooled several disks. */
  array?: ArrayRecord;
}

/**
 * ctrvol's md array as built. The UUID tells its own array from any other named "ctrvol", and
 * remembering it is how blank members after a stop/start are recognised as a lost array.
 */
export interface ArrayRecord {
  uuid: string;
  level: RaidLevel;
  /** Kernel names of the members when the array was last used; they may move between boots. */
  members: string[];
}

const stringFields = ['uuid', 'device', 'filesystem', 'label', 'mountPoint', 'setupAt'] as const;

/**
 * The recorded state, or undefined on a machine never set up. A damaged record is an
 * environment error that names the file: guessing from half a record could mount the wrong disk.
 */
export async function readState(file: string): Promise<SetupState | undefined> {
  let value: unknown;
  try {
    value = await readJson<unknown>(file);
  } catch (error) {
    throw new EnvironmentError(`${file} cannot be read: ${(error as Error).message}`, {
      cause: error,
      hint: 'move it aside to set the volume up afresh (it is found again by its label)',
    });
  }

  if (value === undefined) {
    return undefined;
  }

  const record = value as Record<string, unknown>;
  const valid =
    typeof value === 'object' &&
    value !== null &&
    record.version === 1 &&
    stringFields.every((field) => typeof record[field] === 'string') &&
    typeof record.hiddenBytes === 'number' &&
    isOptionalList(record.bindMounts);
  if (!valid) {
    throw new EnvironmentError(`${file} is not a ctrvol state record`, {
      hint: 'move it aside to set the volume up afresh (it is found again by its label)',
    });
  }

  return value as SetupState;
}

function isOptionalList(value: unknown): boolean {
  return value === undefined || (Array.isArray(value) && value.every((v) => typeof v === 'string'));
}

export function writeState(file: string, state: SetupState): Promise<void> {
  return writeJsonDurably(file, state);
}
