import path from 'node:path';

/**
 * Every system file ctrvol writes, below --root. Tests give each run its own root; production
 * uses "/". Devices and the mount point are never prefixed: they are the machine's own.
 */
export interface Paths {
  root: string;
  stateDir: string;
  stateFile: string;
  /** Written before mkfs, so that a half-formatted device is recognised as ctrvol's own. */
  formatIntentFile: string;
  lockFile: string;
  /** Where the volume is mounted while the old store is copied onto it. */
  stagingDir: string;
  systemdDir: string;
  /**
   * Where mdadm may keep its config: Amazon Linux and Fedora first, then Debian and Ubuntu. The
   * first that exists is the one ctrvol updates.
   */
  mdadmConfigFiles: string[];
  /** NodeConfig documents nodeadm reads besides user data (drop-ins). */
  nodeadmDropInDir: string;
  /** The instance's user data as cloud-init saved it; nodeadm reads the same text from IMDS. */
  userDataFile: string;
  /** V8's compiled code for the embedded bundles, kept between runs (agent/embedded.ts). */
  codeCacheDir: string;
}

export function getPaths(root: string): Paths {
  const under = (...parts: string[]) => path.join(root, ...parts);
  const stateDir = under('var/lib/ctrvol');

  return {
    root,
    stateDir,
    stateFile: path.join(stateDir, 'state.json'),
    formatIntentFile: path.join(stateDir, 'format-intent.json'),
    lockFile: path.join(stateDir, 'setup.lock'),
    stagingDir: under('run/ctrvol/staging'),
    systemdDir: under('etc/systemd/system'),
    mdadmConfigFiles: [under('etc/mdadm.conf'), under('etc/mdadm/mdadm.conf')],
    nodeadmDropInDir: under('etc/eks/nodeadm.d'),
    userDataFile: under('var/lib/cloud/instance/user-data.txt'),
    codeCacheDir: under('var/cache/ctrvol'),
  };
}

/** Files ctrvol keeps at the top of the volume, outside what it copied there. */
export const volumeMetaDir = '.ctrvol';
export const preservedMarker = `${volumeMetaDir}/preserved.json`;
export const copyStartedMarker = `${volumeMetaDir}/copy-started.json`;
export const inServiceMarker = `${volumeMetaDir}/in-service.json`;

/**
 * The one folder at the top of the volume that holds the directories bound from it
 * (volume.bindMounts), each at its own absolute path: /var/lib/kubelet is bound from
 * ctrvol-bind/var/lib/kubelet. Everything else at the top of the volume is containerd's.
 */
export const bindDir = 'ctrvol-bind';

/** Where a bound directory lives on the volume, relative to its top. */
export function getBindFolder(directory: string): string {
  return `${bindDir}${directory}`;
}

/**
 * The records of one bound directory's copy, in ctrvol's own folder on the volume. The name
 * escapes every "/" so that /var/lib/a-b and /var/lib/a/b can never share a record.
 */
export function getBindMarkers(directory: string): { copied: string; copyStarted: string } {
  const name = encodeURIComponent(directory.slice(1));
  return {
    copied: `${volumeMetaDir}/bind/${name}.json`,
    copyStarted: `${volumeMetaDir}/bind/${name}.copy-started.json`,
  };
}

export const bindMarkerDir = `${volumeMetaDir}/bind`;
