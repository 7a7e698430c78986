import path from 'node:path';

/**
 * The one seam between ctrvol and the machine's own view of its disks. Production reads the real
 * /sys, /dev and /proc; unit tests point it at fixture trees so that the root-disk guard can be
 * exercised without going anywhere near this machine's real disk.
 */
export interface Host {
  /** sysfs, normally /sys. */
  sys: string;
  /** devtmpfs, normally /dev; device paths in the config are read relative to it. */
  dev: string;
  /** procfs, normally /proc; mountinfo is read from proc/self/mountinfo, swaps from proc/swaps. */
  proc: string;
}

export const realHost: Host = { sys: '/sys', dev: '/dev', proc: '/proc' };

/** Where a `/dev/...` path really lives under this host's dev root. */
export function getHostDevPath(host: Host, devicePath: string): string {
  if (host.dev === '/dev' || !devicePath.startsWith('/dev/')) {
    return devicePath;
  }

  return path.join(host.dev, devicePath.slice('/dev/'.length));
}
