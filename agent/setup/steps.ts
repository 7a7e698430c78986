import { bindStep } from './steps/bind.js';
import { formatStep } from './steps/format.js';
import { growStep } from './steps/grow.js';
import { lockStep } from './steps/lock.js';
import { mountStep } from './steps/mount.js';
import { preserveStep } from './steps/preserve.js';
import { quiesceStep } from './steps/quiesce.js';
import { recordStep } from './steps/record.js';
import { resolveStep } from './steps/resolve.js';
import { startStep } from './steps/start.js';
import { wireStep } from './steps/wire.js';
import type { Step } from './step.js';

/**
 * The boot path, in the order it runs. Each step probes first and says "already done" when the
 * machine is already as it should be, so a second run changes nothing.
 *
 *   lock      one run at a time: the unit and a user-data run must never race
 *   resolve   find the device (recorded UUID first), probe it, refuse anything not ctrvol's
 *   quiesce   stop containerd and the kubelet; refuse while containers still run
 *   format    mkfs, only on a blank device (or ctrvol's own interrupted mkfs)
 *   preserve  copy the old store onto the volume through a staging mount, verify, mark
 *   mount     mount the volume at the mount point
 *   grow      grow the filesystem online if the device was enlarged
 *   bind      carry each volume.bindMounts directory onto the volume once, bind it every boot
 *   wire      the containerd (and kubelet) drop-ins that order them after ctrvol-setup
 *   start     start what quiesce stopped
 *   record    state for `ctrvol status` and for finding the volume by UUID next boot
 */
export const setupSteps: readonly Step[] = [
  lockStep,
  resolveStep,
  quiesceStep,
  formatStep,
  preserveStep,
  mountStep,
  growStep,
  bindStep,
  wireStep,
  startStep,
  recordStep,
];
