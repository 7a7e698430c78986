/**
 * Runs one e2e guest under qemu with software emulation (KVM does not work on the machines
 * this runs on) until it powers itself off, or until a deadline.
 *
 * Only the qemu processes started here are ever signalled, by the PID spawn returned. Each runs
 * under `setpriv --pdeathsig KILL`, so that a test process killed from outside does not leave
 * an emulator spinning.
 */
import { spawn } from 'node:child_process';
import { open, readFile } from 'node:fs/promises';
import type { BaseImage } from './image.js';

export interface NvmeDisk {
  /** NVMe serial, as EBS sets it: the volume id without its dash (`vol0123...`), ≤ 20 chars. */
  serial: string;
  /** A raw image file (sparse, so it reads as zeros like a new EBS volume). */
  file: string;
}

export interface VmOptions {
  base: BaseImage;
  /** The scenario's qcow2 overlay of base.qcow2: the root disk, /dev/vda. */
  rootOverlay: string;
  /** The seed disk (ext4, serial e2e-seed) that e2e-init applies at the first boot. */
  seedImage: string;
  /** The result disk (serial e2e-results) the guest writes its tar archive to. */
  resultsImage: string;
  nvme: NvmeDisk[];
  consoleLog: string;
  timeoutMs: number;
  memoryMiB?: number;
  cpus?: number;
  /** Extra kernel command line. */
  append?: string;
}

export interface VmRun {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  /** The guest kernel panicked (seen on the console); qemu was killed at once. */
  panicked: boolean;
  seconds: number;
  stderr: string;
}

const running = new Set<number>();

function killAll(): void {
  for (const pid of running) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}
process.once('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(130);
  });
}

export function qemuArgs(o: VmOptions): string[] {
  const append = [
    'root=/dev/vda',
    'rw',
    'console=ttyS0',
    'init=/usr/local/sbin/e2e-init',
    // Emulated page-table isolation and retpolines only cost time in a throwaway VM.
    'mitigations=off',
    'quiet',
    'systemd.show_status=error',
    o.append ?? '',
  ]
    .filter((s) => s !== '')
    .join(' ');
  const args = [
    '-accel',
    'tcg',
    '-machine',
    'q35',
    // Node.js and containerd want more than qemu64's instruction set (x86-64-v2 here). `max`
    // also works but boots no faster: emulated AVX and 5-level paging only add work.
    // CTRVOL_E2E_CPU picks another model, for comparing emulation speed.
    '-cpu',
    process.env.CTRVOL_E2E_CPU ?? 'Nehalem',
    // One vCPU. With two, the guest kernel sometimes died early in boot ("Oops: int3" in code
    // it was live-patching) under qemu 7.2's multi-threaded TCG: a cross-vCPU code-patching
    // race of the emulator. Two vCPUs made the boots no faster. CTRVOL_E2E_SMP overrides.
    '-smp',
    String(o.cpus ?? Number(process.env.CTRVOL_E2E_SMP ?? 1)),
    '-m',
    String(o.memoryMiB ?? 1536),
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    // No network: nothing in a scenario may reach anything, and #2122's pull must fail.
    '-nic',
    'none',
    '-kernel',
    o.base.kernel,
    '-initrd',
    o.base.initrd,
    '-append',
    append,
    '-serial',
    `file:${o.consoleLog}`,
  ];
  // virtio disks are named in PCI order, which is the order given here: root is /dev/vda.
  const virtio = [
    { id: 'root', file: o.rootOverlay, format: 'qcow2', serial: 'e2e-root', extra: '' },
    { id: 'seed', file: o.seedImage, format: 'raw', serial: 'e2e-seed', extra: ',readonly=on' },
    { id: 'results', file: o.resultsImage, format: 'raw', serial: 'e2e-results', extra: '' },
  ];
  for (const d of virtio) {
    args.push(
      '-drive',
      `if=none,id=${d.id},file=${d.file},format=${d.format},cache=unsafe${d.extra}`,
      '-device',
      `virtio-blk-pci,drive=${d.id},serial=${d.serial}`,
    );
  }
  o.nvme.forEach((disk, i) => {
    if (disk.serial.length > 20) throw new Error(`NVMe serial over 20 chars: ${disk.serial}`);
    args.push(
      '-drive',
      `if=none,id=nvme${i},file=${disk.file},format=raw,cache=unsafe`,
      '-device',
      `nvme,drive=nvme${i},serial=${disk.serial}`,
    );
  });
  return args;
}

/** Boots the guest and waits until qemu exits (the guest powered off) or the deadline. */
export async function runVm(o: VmOptions): Promise<VmRun> {
  const started = Date.now();
  // The console file is created here so that it exists even if qemu fails to start.
  await (await open(o.consoleLog, 'w')).close();
  const child = spawn('setpriv', ['--pdeathsig', 'KILL', 'qemu-system-x86_64', ...qemuArgs(o)], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error('qemu did not start');
  running.add(pid);
  // Reaped: from here on the PID is no longer this qemu's.
  child.once('exit', () => running.delete(pid));
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-8000);
  });
  let timedOut = false;
  let panicked = false;
  // Only this qemu, by its PID, and only while it is ours: once it has been reaped the PID may
  // belong to someone else.
  const signal = (name: NodeJS.Signals): void => {
    if (!running.has(pid)) return;
    try {
      process.kill(pid, name);
    } catch {
      // Exited between the check and the signal.
    }
  };
  const stop = (): void => {
    signal('SIGTERM');
    setTimeout(() => signal('SIGKILL'), 5000).unref();
  };
  const timer = setTimeout(() => {
    timedOut = true;
    stop();
  }, o.timeoutMs);
  // A guest whose kernel panicked never powers off: stop waiting for it at once. The console is
  // small (the guest boots with `quiet`), so reading it whole every few seconds is cheap.
  const watch = setInterval(() => {
    readFile(o.consoleLog, 'utf8').then(
      (text) => {
        if (!panicked && text.includes('Kernel panic - not syncing')) {
          panicked = true;
          stop();
        }
      },
      () => undefined,
    );
  }, 3000);
  try {
    const [exitCode, exitSignal] = await new Promise<[number | null, string | null]>(
      (resolve, reject) => {
        child.once('error', reject);
        child.once('close', (code, sig) => resolve([code, sig]));
      },
    );
    const seconds = (Date.now() - started) / 1000;
    return { exitCode, signal: exitSignal, timedOut, panicked, seconds, stderr };
  } finally {
    clearTimeout(timer);
    clearInterval(watch);
    running.delete(pid);
  }
}
