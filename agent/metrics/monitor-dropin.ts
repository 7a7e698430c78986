import path from 'node:path';
import type { Config, Filesystem } from '../config/schema.js';
import { ConfigError } from '../errors.js';

/**
 * ctrvol-monitor.service runs with ProtectSystem=strict: the whole file system is read-only to
 * it except the paths its unit names. The unit itself names the fixed ones (/var/lib/ctrvol, the
 * default mount point); the paths that come from the config (the metrics files, a mount point
 * other than the default) go into this drop-in, which `ctrvol setup` writes before a
 * daemon-reload, so that the monitor starts with them.
 *
 * Every path is prefixed with "-": a textfile folder that does not exist yet must not stop the
 * unit from starting (systemd fails a unit whose ReadWritePaths= entry is missing). The
 * monitor's write then fails, which it logs, and the next start picks the folder up.
 */

export const monitorUnit = 'ctrvol-monitor.service';

export const monitorDropInPath = `etc/systemd/system/${monitorUnit}.d/10-ctrvol.conf`;

export interface MonitorDropInInputs {
  /** Folders the monitor writes: the textfile's folder, the EMF file's folder, the mount point. */
  paths: string[];
  /**
   * Whether the monitor opens the volume's device read-write: resize2fs opens an ext4 volume's
   * device O_RDWR. The device itself is known only once setup has resolved it.
   */
  writesDevice: boolean;
}

/** What the drop-in must hold for a config and the filesystem actually on the volume. */
export function getMonitorDropInInputs(
  config: Config,
  filesystem: Filesystem,
): MonitorDropInInputs {
  const { textfile, emfFile } = config.monitor.metrics;
  const paths = [config.volume.mountPoint];
  // The textfile is replaced through a temporary file and the EMF file may have to be created:
  // both need their folder, not just the file.
  for (const file of [textfile, emfFile]) {
    if (file !== undefined) {
      paths.push(path.dirname(file));
    }
  }

  // xfs_growfs, xfs_info and dumpe2fs read the device, which the unit's DeviceAllow= grants for
  // every disk; only resize2fs needs to write it.
  return { paths, writesDevice: filesystem === 'ext4' };
}

export function renderMonitorDropIn(
  paths: readonly string[],
  writableDevices: readonly string[] = [],
): string {
  const lines = [
    '# Written by ctrvol setup from its config; rewritten on every run.',
    '# What ctrvol-monitor.service may write besides what its unit names.',
    '[Service]',
  ];
  for (const entry of unique(paths)) {
    lines.push(`ReadWritePaths=${quote(`-${checkPath(entry)}`)}`);
  }

  for (const device of unique(writableDevices)) {
    // Device paths are resolved (symlinks followed) when the unit starts; a device missing then
    // is skipped with a warning rather than failing the unit.
    if (!device.startsWith('/dev/') || /[\s"'\\%]/.test(device)) {
      throw new ConfigError(`${JSON.stringify(device)} is not a device path systemd can take`);
    }

    lines.push(`DeviceAllow=${checkPath(device)} rw`);
  }

  return `${lines.join('\n')}\n`;
}

function unique(values: readonly string[]): string[] {
  return [...new Set(values)].sort();
}

function checkPath(value: string): string {
  // A control character would end the line and let the rest be read as another directive.
  if (!path.isAbsolute(value) || /[\u0000-\u001f\u007f]/.test(value)) {
    throw new ConfigError(`${JSON.stringify(value)} is not an absolute path a unit file can hold`);
  }

  return value;
}

/**
 * systemd reads ReadWritePaths= as a list split on whitespace, with quotes and backslash escapes
 * (extract_first_word with EXTRACT_UNQUOTE), and expands "%" specifiers in each entry. A path is
 * quoted only when it has to be, so that the usual drop-in stays easy to read.
 */
function quote(value: string): string {
  const escaped = value.replaceAll('%', '%%');
  if (!/[\s"'\\]/.test(escaped)) {
    return escaped;
  }

  return `"${escaped.replace(/[\\"]/g, (char) => `\\${char}`)}"`;
}
