import type { FilesystemUsage } from '../host/usage.js';

/**
 * What one monitor tick saw, handed to every metrics writer. Counters are totals kept across
 * restarts of the monitor (in /var/lib/ctrvol/monitor.json), so that Prometheus sees them only
 * ever grow.
 */
export interface MonitorSnapshot {
  at: Date;
  root: FilesystemUsage;
  /** The containerd volume, when it is mounted where it should be. */
  volume: FilesystemUsage | undefined;
  volumeMountPoint: string;
  volumeMounted: boolean;
  /** Mounted, but read-only: the kernel's answer to I/O errors on ext4 and xfs. */
  volumeReadOnly: boolean;
  prune: {
    /** Totals since the monitor was first started on this node. */
    runsTotal: number;
    imagesRemovedTotal: number;
    bytesFreedTotal: number;
    /** The last prune, if any. */
    last:
      { at: Date; imagesRemoved: number; bytesFreed: number; reachedTarget: boolean } | undefined;
  };
  /** How the last `ctrvol setup` ended, as it recorded it. */
  setup: { outcome: 'ok' | 'failed' | 'unknown'; at: Date | undefined };
  /** Whether this tick did everything it tried (a failed prune or CRI call makes it false). */
  tickSucceeded: boolean;
}
