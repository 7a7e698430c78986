import type { Filesystem } from '../config/schema.js';
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
}

export function readState(file: string): Promise<SetupState | undefined> {
  return readJson<SetupState>(file);
}

export function writeState(file: string, state: SetupState): Promise<void> {
  return writeJsonDurably(file, state);
}
