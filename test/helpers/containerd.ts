import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { mountIdsUnder, unmountAllUnder } from './mounts.js';

export const SANDBOX_IMAGE = 'localhost/kubernetes/pause:latest';
export const PINNED_LABEL = 'io.cri-containerd.pinned';
export const K8S_NAMESPACE = 'k8s.io';

export interface StartContainerdOptions {
  /** containerd's `root`: the store that ctrvol copies. */
  root: string;
  /** containerd's `state`, normally /run/containerd. Must not be shared with another instance. */
  state: string;
  /** Holds config.toml, the socket, the log and containerd's scratch space; keep the path short. */
  dir: string;
  /** How long to wait for the socket to answer. */
  startTimeoutMs?: number;
  sandboxImage?: string;
}

export interface Containerd {
  socket: string;
  root: string;
  state: string;
  pid: number;
  configPath: string;
  logPath: string;
  /** Runs `ctr --address SOCKET ...args` and returns its stdout. */
  ctr(args: readonly string[]): Promise<string>;
  /** The last lines of containerd's log, for assertion messages. */
  logTail(lines?: number): Promise<string>;
  stop(): Promise<void>;
}

function tomlString(value: string): string {
  return JSON.stringify(value);
}

export function renderConfig(o: {
  root: string;
  state: string;
  socket: string;
  dir: string;
  sandboxImage: string;
}): string {
  return [
    'version = 2',
    `root = ${tomlString(o.root)}`,
    `state = ${tomlString(o.state)}`,
    // Snapshotters that cannot work here (or would probe with modprobe) are left out, so that
    // the store holds only what an AL2023 node has: overlayfs and native.
    'disabled_plugins = [',
    '  "io.containerd.snapshotter.v1.aufs",',
    '  "io.containerd.snapshotter.v1.btrfs",',
    '  "io.containerd.snapshotter.v1.zfs",',
    '  "io.containerd.snapshotter.v1.devmapper",',
    ']',
    '',
    '[grpc]',
    `  address = ${tomlString(o.socket)}`,
    '',
    // Left empty, ttrpc would still derive its socket from the grpc one; naming it keeps both
    // under `dir` explicitly.
    '[ttrpc]',
    `  address = ${tomlString(`${o.socket}.ttrpc`)}`,
    '',
    '[plugins]',
    '  [plugins."io.containerd.grpc.v1.cri"]',
    `    sandbox_image = ${tomlString(o.sandboxImage)}`,
    // The stream server binds a random port; loopback only, never another address.
    '    stream_server_address = "127.0.0.1"',
    '    stream_server_port = "0"',
    '    [plugins."io.containerd.grpc.v1.cri".cni]',
    // The host's CNI config and plugins are none of this instance's business.
    `      conf_dir = ${tomlString(path.join(o.dir, 'cni', 'net.d'))}`,
    `      bin_dir = ${tomlString(path.join(o.dir, 'cni', 'bin'))}`,
    '    [plugins."io.containerd.grpc.v1.cri".registry]',
    `      config_path = ${tomlString(path.join(o.dir, 'certs.d'))}`,
    // The default is /opt/containerd, which this instance would otherwise create on the host.
    '  [plugins."io.containerd.internal.v1.opt"]',
    `    path = ${tomlString(path.join(o.dir, 'opt'))}`,
    '',
  ].join('\n');
}

// The process may have exited between the check and the signal; that is what was wanted.
function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

async function processGone(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  // A zombie still answers signal 0; its state letter says it has exited.
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat === '' || /\) Z /.test(stat);
}

/**
 * Starts a private containerd on the given root and state, talking on a socket inside `dir`.
 * It runs in its own session (and so its own process group) so that a Ctrl-C on the test run
 * reaches only the test process, whose cleanup then stops containerd in order instead of both
 * dying at once with snapshots still mounted.
 */
export async function startContainerd(options: StartContainerdOptions): Promise<Containerd> {
  const dir = path.resolve(options.dir);
  const root = path.resolve(options.root);
  const state = path.resolve(options.state);
  const socket = path.join(dir, 'containerd.sock');
  if (Buffer.byteLength(socket) > 100) {
    throw new Error(`socket path too long for a unix socket: ${socket}`);
  }
  const configPath = path.join(dir, 'config.toml');
  const logPath = path.join(dir, 'containerd.log');
  const tmp = path.join(dir, 'tmp');
  await Promise.all([root, state, tmp].map((d) => mkdir(d, { recursive: true })));
  // The root may well be a test's own volume mount; stop() must leave that one alone.
  const mountsBefore = await mountIdsUnder([root, state, dir]);
  await writeFile(
    configPath,
    renderConfig({
      root,
      state,
      socket,
      dir,
      sandboxImage: options.sandboxImage ?? SANDBOX_IMAGE,
    }),
  );

  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    // 1.6 mounts snapshots for unpacking under ROOT/tmpmounts, but other scratch files follow
    // TMPDIR (or XDG_RUNTIME_DIR, left unset here); this keeps them inside `dir`.
    TMPDIR: tmp,
  };
  // The log file itself becomes the child's stderr (rather than a pipe through this process),
  // so containerd can log through its shutdown even if the test process is gone by then.
  const logStream = createWriteStream(logPath, { flags: 'a' });
  await once(logStream, 'open');
  const child = execa('containerd', ['--config', configPath], {
    stdin: 'ignore',
    stdout: 'ignore',
    stderr: logStream,
    detached: true,
    reject: false,
    extendEnv: false,
    env,
  });
  logStream.close();
  const pid = child.pid;
  if (pid === undefined) {
    await child;
    throw new Error(`containerd did not start; see ${logPath}`);
  }
  let exited = false;
  // If the test process ends without stop() (an uncaught error), the daemon, being in its own
  // session, would outlive it; this PID is the only one ever signalled.
  const killOnExit = (): void => {
    if (!exited) signal(pid, 'SIGKILL');
  };
  process.once('exit', killOnExit);
  void child.then(() => {
    exited = true;
    process.off('exit', killOnExit);
  });

  const logTail = async (lines = 30): Promise<string> => {
    const text = await readFile(logPath, 'utf8').catch(() => '');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  };

  const ctr = async (args: readonly string[]): Promise<string> => {
    const result = await execa('ctr', ['--address', socket, ...args], {
      stdin: 'ignore',
      timeout: 300_000,
    });
    return result.stdout;
  };

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (!exited) {
      signal(pid, 'SIGTERM');
      const deadline = Date.now() + 15_000;
      while (!exited && Date.now() < deadline) await sleep(50);
      if (!exited) signal(pid, 'SIGKILL');
    }
    await child;
    // containerd unmounts its own transient mounts; a SIGKILL can leave one behind, and only
    // this instance can have mounted anything new under these directories.
    await unmountAllUnder([root, state, dir], mountsBefore);
  };

  const deadline = Date.now() + (options.startTimeoutMs ?? 20_000);
  for (;;) {
    if (exited || (await processGone(pid))) {
      await child;
      throw new Error(`containerd exited during startup:\n${await logTail()}`);
    }
    const probe = await execa('ctr', ['--address', socket, '--timeout', '2s', 'version'], {
      stdin: 'ignore',
      reject: false,
      timeout: 5_000,
    });
    if (probe.exitCode === 0) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`containerd did not answer on ${socket} in time:\n${await logTail()}`);
    }
    await sleep(100);
  }

  return { socket, root, state, pid, configPath, logPath, ctr, logTail, stop };
}

export interface ImportOptions {
  pinned?: boolean;
  /**
   * Names to label. By default, the names ctr reports unpacking; give them explicitly when
   * importing with --no-unpack or when an archive holds names you do not want pinned.
   */
  names?: string[];
  extraArgs?: string[];
}

/** Imports an image archive into the k8s.io namespace, as the AMI build does for pause.tar. */
export async function importImage(
  ctrd: Pick<Containerd, 'ctr'>,
  archivePath: string,
  options: ImportOptions = {},
): Promise<string[]> {
  const out = await ctrd.ctr([
    '-n',
    K8S_NAMESPACE,
    'images',
    'import',
    ...(options.extraArgs ?? []),
    archivePath,
  ]);
  // ctr 1.6 prints one "unpacking NAME (sha256:…)...done" line per image it imported.
  const names =
    options.names ??
    [...out.matchAll(/^unpacking (\S+) \(sha256:[0-9a-f]{64}\)/gm)].map((m) => m[1] ?? '');
  if (names.length === 0) throw new Error(`ctr import reported no image:\n${out}`);
  if (options.pinned) {
    for (const name of names) {
      await ctrd.ctr(['-n', K8S_NAMESPACE, 'images', 'label', name, `${PINNED_LABEL}=pinned`]);
    }
  }
  return names;
}

export interface ListedImage {
  name: string;
  mediaType: string;
  digest: string;
  /** As ctr prints it, e.g. `12.3 MiB`. */
  size: string;
  /** `size` converted back to bytes; approximate, since ctr rounds. */
  sizeBytes: number;
  platforms: string[];
  labels: Record<string, string>;
  /** First word of ctr's check status: `complete`, `incomplete`, `unavailable`, … */
  status: string;
  /** The full status, e.g. `complete (2/2)`. */
  statusDetail: string;
  unpacked: boolean;
  pinned: boolean;
}

const UNITS: Record<string, number> = {
  B: 1,
  kB: 1e3,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
  TiB: 1024 ** 4,
};

export function parseHumanSize(text: string): number {
  const match = /^([\d.]+)\s*([A-Za-z]+)$/.exec(text.trim());
  const unit = match?.[2];
  if (match === null || unit === undefined || UNITS[unit] === undefined) return NaN;
  return Math.round(Number(match[1]) * UNITS[unit]);
}

// Columns are padded with spaces by a tabwriter, and the size and status columns contain spaces
// themselves, so each line is matched as a whole rather than split.
const LS_LINE = /^(\S+)\s+(\S+)\s+(sha256:[0-9a-f]{64})\s+(\S+ \S+)\s+(\S+)\s+(.*?)\s*$/;
const CHECK_LINE =
  /^(\S+)\s+(\S+)\s+(sha256:[0-9a-f]{64})\s+(\S+(?: \(\d+\/\d+\))?)\s+(.+?)\s+(true|false)\s*$/;

export function parseImagesLs(text: string): Omit<ListedImage, 'status' | 'statusDetail'>[] {
  const images: Omit<ListedImage, 'status' | 'statusDetail' | 'unpacked'>[] = [];
  for (const line of text.split('\n').slice(1)) {
    if (line.trim() === '') continue;
    const m = LS_LINE.exec(line);
    if (m === null) throw new Error(`unexpected ctr images ls line: ${line}`);
    const [, name = '', mediaType = '', digest = '', size = '', platforms = '', labelText = ''] = m;
    const labels: Record<string, string> = {};
    if (labelText !== '-' && labelText !== '') {
      for (const pair of labelText.split(',')) {
        const eq = pair.indexOf('=');
        if (eq < 0) labels[pair] = '';
        else labels[pair.slice(0, eq)] = pair.slice(eq + 1);
      }
    }
    images.push({
      name,
      mediaType,
      digest,
      size,
      sizeBytes: parseHumanSize(size),
      platforms: platforms === '-' ? [] : platforms.split(','),
      labels,
      pinned: labels[PINNED_LABEL] === 'pinned',
    });
  }
  return images.map((i) => ({ ...i, unpacked: false }));
}

export function parseImagesCheck(
  text: string,
): Map<string, { status: string; statusDetail: string; unpacked: boolean }> {
  const result = new Map<string, { status: string; statusDetail: string; unpacked: boolean }>();
  for (const line of text.split('\n').slice(1)) {
    if (line.trim() === '') continue;
    const m = CHECK_LINE.exec(line);
    if (m === null) throw new Error(`unexpected ctr images check line: ${line}`);
    const [, name = '', , , statusDetail = '', , unpacked] = m;
    result.set(name, {
      status: statusDetail.split(' ')[0] ?? '',
      statusDetail,
      unpacked: unpacked === 'true',
    });
  }
  return result;
}

/** Images in the k8s.io namespace, with labels from `ls` and availability from `check`. */
export async function listImages(ctrd: Pick<Containerd, 'ctr'>): Promise<ListedImage[]> {
  const ls = await ctrd.ctr(['-n', K8S_NAMESPACE, 'images', 'ls']);
  const check = await ctrd.ctr(['-n', K8S_NAMESPACE, 'images', 'check']);
  const statuses = parseImagesCheck(check);
  return parseImagesLs(ls).map((image) => {
    const s = statuses.get(image.name);
    return {
      ...image,
      status: s?.status ?? 'unknown',
      statusDetail: s?.statusDetail ?? 'unknown',
      unpacked: s?.unpacked ?? false,
    };
  });
}

/** Writes an OCI archive of one image, like the AMI's /etc/eks/pause.tar. */
export async function exportImage(
  ctrd: Pick<Containerd, 'ctr'>,
  name: string,
  out: string,
): Promise<void> {
  await ctrd.ctr(['-n', K8S_NAMESPACE, 'images', 'export', out, name]);
}
