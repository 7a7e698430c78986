/**
 * Runs one e2e scenario: a qcow2 overlay of the cached base image, NVMe disks with EBS-like (or
 * instance-store-like) serials, a seed disk carrying the scenario's guest script (and ctrvol,
 * baked in or not), one or more qemu runs that may each span several boots, and the evidence the
 * guest wrote to its result disk, parsed per boot.
 *
 * Between runs the guest is powered off, as an EC2 instance is between a stop and a start: the
 * root overlay stays, and the next run may attach the NVMe disks in another order, or a blank
 * file where a disk was (the instance store after a stop/start).
 *
 * A scenario is a guest script in test/e2e/guest/ plus a test file that calls runScenario and
 * asserts on what came back.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  cacheDir,
  createOverlay,
  ensureBaseImage,
  type BaseImage,
} from '../../scripts/vm/image.js';
import { type NvmeDisk, runVm, type VmRun } from '../../scripts/vm/qemu.js';
import { buildSeed } from '../../scripts/vm/seed.js';

const execFileAsync = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));

/**
 * Every deadline is multiplied by CTRVOL_E2E_TIME_SCALE (default 1): an emulated boot on a
 * shared, loaded machine can take twice its usual time without anything being wrong.
 */
export const timeScale = (() => {
  const text = process.env.CTRVOL_E2E_TIME_SCALE;
  const value = text === undefined || text === '' ? 1 : Number(text);
  if (!Number.isFinite(value) || value < 1 || value > 10) {
    throw new Error(`CTRVOL_E2E_TIME_SCALE: got "${text}"; allowed: a number from 1 to 10`);
  }

  return value;
})();

/** The data volume: what ctrvol's config names, by its udev by-id link. */
export const VOL0 = 'vol0c7e2e000000000a1';
/** A second EBS volume that nothing names; ctrvol must leave it alone. */
export const VOL1 = 'vol0c7e2e000000000b2';
export const VOL0_LINK = `/dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_${VOL0}`;
export const SANDBOX_IMAGE = 'localhost/kubernetes/pause:latest';
export const APP_IMAGE = 'localhost/e2e/app:1';
export const PINNED = 'io.cri-containerd.pinned=pinned';

const GiB = 1024 ** 3;

/**
 * A udev rule giving an NVMe disk its block-device mapping name as a link (/dev/xvdb), the way
 * amazon-ec2-utils' rule does. That rule reads the name from the NVMe controller's vendor area,
 * which qemu 7.2 cannot fill, so this one keys on the serial instead.
 */
export function mappingNameRule(serial: string, name: string): string {
  return `KERNEL=="nvme*n*", ENV{DEVTYPE}=="disk", ATTRS{serial}=="${serial}", SYMLINK+="${name}"\n`;
}

/** The config a baked-in ctrvol gets: the data volume by its stable name, defaults otherwise. */
export const bakedConfig = `volume:
  device: ${VOL0_LINK}
  filesystem: xfs
onFailure: block
`;

/** One NVMe disk as a run attaches it. */
export interface DiskSpec {
  /** The NVMe serial (at most 20 characters): an EBS volume id without its dash, or anything. */
  serial: string;
  /**
   * The disk's raw image, a file name in the run directory. A name an earlier run used is the
   * same disk with whatever that run left on it; a new name is a new blank disk (sparse, so it
   * reads as zeros, like a new EBS volume or a fresh instance-store disk).
   */
  file: string;
  /** The size of a new disk; an existing one keeps its own. */
  sizeGiB?: number;
}

/** One qemu run: the guest boots `boots` times (rebooting itself in between) and powers off. */
export interface RunSpec {
  boots: number;
  /** The NVMe disks in PCI order, which is the order the guest kernel usually numbers them. */
  nvme: DiskSpec[];
}

/**
 * The ctrvol units that scenarios about disks mask: `ctrvol verify` (scenario 4's subject) and the
 * monitor each start Node.js at every boot, half a minute of emulated CPU before the scenario
 * step can run, and neither bears on which disk ctrvol-setup chose.
 */
export const notAboutDisks = ['ctrvol-verify.service', 'ctrvol-monitor.service'];

/** The two EBS volumes of a single-run scenario: the data volume and one nothing names. */
export const ebsDisks: DiskSpec[] = [
  { serial: VOL0, file: 'vol0.raw' },
  { serial: VOL1, file: 'vol1.raw' },
];

interface ScenarioCommon {
  /** Short id, used for the run directory. */
  id: string;
  /** File name under test/e2e/guest/. */
  guestScript: string;
  /** Install ctrvol before the first boot with this config (as an AMI bake would). */
  bakeConfig?: string;
  udevRules?: Record<string, string>;
  /** Units that never start in this scenario (masked before the first boot). */
  maskUnits?: string[];
  env?: Record<string, string>;
}

export type ScenarioSpec = ScenarioCommon &
  (
    | {
        /** How many boots the script asks for, in one run with ebsDisks. */
        boots: number;
      }
    | {
        /** The runs in order; the guest's boot numbers carry on from one run to the next. */
        runs: RunSpec[];
      }
  );

export interface JournalEntry {
  MESSAGE?: string;
  UNIT?: string;
  MESSAGE_ID?: string;
  JOB_TYPE?: string;
  JOB_RESULT?: string;
  SYSLOG_IDENTIFIER?: string;
  _PID?: string;
  __MONOTONIC_TIMESTAMP: string;
  [field: string]: unknown;
}

export class Boot {
  constructor(
    readonly number: number,
    /** The qemu run (1, 2, ...) the boot belonged to. */
    readonly run: number,
    readonly dir: string,
  ) {}

  has(name: string): boolean {
    return existsSync(path.join(this.dir, name));
  }

  text(name: string): string {
    const file = path.join(this.dir, name);
    if (!existsSync(file)) throw new Error(`boot ${this.number} recorded no ${name}`);
    return readFileSync(file, 'utf8');
  }

  /** The exit code `record` kept for a command. */
  rc(name: string): number {
    return Number(this.text(`${name}.rc`).trim());
  }

  json<T = unknown>(name: string): T {
    return JSON.parse(this.text(name)) as T;
  }

  private entries: JournalEntry[] | undefined;

  journal(): JournalEntry[] {
    this.entries ??= this.text('journal.json')
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as JournalEntry);
    return this.entries;
  }

  /**
   * When systemd began and finished a unit's start job, in seconds since boot, from its own
   * journal lines ("Starting X..." / "Started X." or "Finished X."), as the journal has them.
   */
  unitJob(unit: string): { starting?: number; done?: number; result?: string } {
    const mine = this.journal().filter((e) => e._PID === '1' && e.UNIT === unit);
    const starting = mine.find((e) => e.MESSAGE_ID === MESSAGE_UNIT_STARTING);
    const done = mine.find(
      (e) => e.MESSAGE_ID === MESSAGE_UNIT_STARTED || e.MESSAGE_ID === MESSAGE_UNIT_FAILED,
    );
    return {
      ...(starting ? { starting: seconds(starting) } : {}),
      ...(done ? { done: seconds(done), result: done.JOB_RESULT ?? 'done' } : {}),
    };
  }

  /** systemctl show's properties of a unit, from the snapshot TAG.units.txt. */
  unitProps(tag: string, unit: string): Record<string, string> {
    const blocks = this.text(`${tag}.units.txt`).split('\n\n');
    for (const block of blocks) {
      const props = Object.fromEntries(
        block
          .split('\n')
          .filter((l) => l.includes('='))
          .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
      );
      if (props.Id === unit) return props;
    }
    throw new Error(`boot ${this.number}: no properties of ${unit} in ${tag}.units.txt`);
  }
}

// systemd's catalog ids for a unit's start job beginning, completing, and failing.
export const MESSAGE_UNIT_STARTING = '7d4958e842da4a758f6c1cdc7b36dcc5';
export const MESSAGE_UNIT_STARTED = '39f53479d3a045ac8e11786248231fbf';
export const MESSAGE_UNIT_FAILED = 'be02cf6855d2428ba40df7e9d022f03d';

function seconds(entry: JournalEntry): number {
  return Number(entry.__MONOTONIC_TIMESTAMP) / 1e6;
}

export interface ScenarioResult {
  boots: Boot[];
  /** The qemu runs, in order. */
  vms: VmRun[];
  /** The last qemu run. */
  vm: VmRun;
  base: BaseImage;
  runDir: string;
  consoleLog: string;
  /** The console's last lines, for assertion messages. */
  consoleTail(lines?: number): string;
}

export interface CriticalPath {
  /** systemd's "Starting ctrvol-setup.service". */
  setupStart: number;
  /** ctrvol's first journal line: Node.js has started and loaded the bundle. */
  setupFirstLog: number;
  /** systemd's "Finished ctrvol-setup.service". */
  setupDone: number;
  containerdStart: number;
  /** systemd's "Started containerd.service" (containerd notified readiness). */
  containerdActive: number;
  /** setupStart to containerdActive. */
  total: number;
}

/**
 * The boot critical path: from systemd starting ctrvol-setup.service to containerd.service
 * becoming active, in seconds since boot, from the guest's journal.
 */
export function criticalPath(boot: Boot): CriticalPath {
  const setup = boot.unitJob('ctrvol-setup.service');
  const containerd = boot.unitJob('containerd.service');
  const firstLog = boot
    .journal()
    .find((e) => e._SYSTEMD_UNIT === 'ctrvol-setup.service' && e.SYSLOG_IDENTIFIER === 'ctrvol');
  if (
    setup.starting === undefined ||
    setup.done === undefined ||
    containerd.starting === undefined ||
    containerd.done === undefined ||
    firstLog === undefined
  ) {
    throw new Error(
      `boot ${boot.number}: the journal lacks start jobs (ctrvol-setup ${JSON.stringify(setup)}, ` +
        `containerd ${JSON.stringify(containerd)}) or ctrvol's own lines`,
    );
  }
  return {
    setupStart: setup.starting,
    setupFirstLog: seconds(firstLog),
    setupDone: setup.done,
    containerdStart: containerd.starting,
    containerdActive: containerd.done,
    total: containerd.done - setup.starting,
  };
}

export function describeCriticalPath(boot: Boot, p: CriticalPath): string {
  const f = (n: number): string => n.toFixed(1);
  const nodeStart = p.setupFirstLog - p.setupStart;
  return (
    `boot ${boot.number} critical path ${f(p.total)} s: ctrvol-setup starting at ` +
    `${f(p.setupStart)} s, first log line ${f(p.setupFirstLog)} s (Node.js start ` +
    `${f(nodeStart)} s), finished ${f(p.setupDone)} s (${f(p.setupDone - p.setupStart)} s); ` +
    `containerd starting ${f(p.containerdStart)} s, active ${f(p.containerdActive)} s`
  );
}

/** When a boot reached its milestones, in seconds since the kernel started. */
export function bootTimeline(boot: Boot): {
  systemd?: number;
  basic?: number;
  multiUser?: number;
  stepStart?: number;
  evidenceTaken?: number;
} {
  const journal = boot.journal();
  const at = (e: JournalEntry | undefined): number | undefined => (e ? seconds(e) : undefined);
  const job = (unit: string, id: string): number | undefined =>
    at(journal.find((e) => e._PID === '1' && e.UNIT === unit && e.MESSAGE_ID === id));
  return {
    systemd: at(journal.find((e) => e._PID === '1')),
    basic: job('basic.target', MESSAGE_UNIT_STARTED),
    multiUser: job('multi-user.target', MESSAGE_UNIT_STARTED),
    stepStart: job('e2e-run.service', MESSAGE_UNIT_STARTING),
    // The runner dumps the journal right after the step, so its last line ends the step.
    evidenceTaken: at(journal[journal.length - 1]),
  };
}

export function describeTimeline(boot: Boot): string {
  const t = bootTimeline(boot);
  const f = (n: number | undefined): string => (n === undefined ? '?' : n.toFixed(1));
  return (
    `boot ${boot.number}: systemd at ${f(t.systemd)} s, basic.target ${f(t.basic)} s, ` +
    `multi-user.target ${f(t.multiUser)} s, scenario step ${f(t.stepStart)}-` +
    `${f(t.evidenceTaken)} s`
  );
}

/** Sends a multi-line text to the test's diagnostics one line at a time (TAP escapes \n). */
export function diagnoseLines(log: (line: string) => void, title: string, text: string): void {
  log(title);
  for (const line of text.trimEnd().split('\n')) log(`  ${line}`);
}

export async function runScenario(
  spec: ScenarioSpec,
  log: (line: string) => void = () => {},
): Promise<ScenarioResult> {
  const runs = 'runs' in spec ? spec.runs : [{ boots: spec.boots, nvme: ebsDisks }];
  const totalBoots = runs.reduce((sum, run) => sum + run.boots, 0);
  const base = await ensureBaseImage(log);
  if (base.built) log(`base image built in ${base.buildSeconds.toFixed(0)} s`);

  const runDir = path.join(cacheDir, 'runs', spec.id);
  await rm(runDir, { recursive: true, force: true });
  await mkdir(runDir, { recursive: true });
  const rootOverlay = path.join(runDir, 'root.qcow2');
  await createOverlay(base.qcow2, rootOverlay);
  const resultsImage = path.join(runDir, 'results.img');
  await writeFile(resultsImage, '');
  await truncate(resultsImage, 256 * 1024 ** 2);
  const seedImage = await buildSeed({
    dir: runDir,
    scenarioScript: path.join(here, 'guest', spec.guestScript),
    env: {
      E2E_VOL0: VOL0,
      E2E_VOL1: VOL1,
      E2E_SANDBOX_IMAGE: SANDBOX_IMAGE,
      E2E_APP_IMAGE: APP_IMAGE,
      ...spec.env,
    },
    ...(spec.bakeConfig === undefined ? {} : { bakeConfig: spec.bakeConfig }),
    ...(spec.udevRules === undefined ? {} : { udevRules: spec.udevRules }),
    ...(spec.maskUnits === undefined ? {} : { maskUnits: spec.maskUnits }),
  });

  const consoleLog = path.join(runDir, 'console.log');
  const consoleTail = (lines = 60): string =>
    readFileSync(consoleLog, 'utf8').split('\n').slice(-lines).join('\n');
  const vms: VmRun[] = [];
  let boots: Boot[] = [];
  let bootsSoFar = 0;
  for (const [index, run] of runs.entries()) {
    const number = index + 1;
    const what = `${spec.id}${runs.length > 1 ? ` run ${number}` : ''}`;
    const nvme = await attachDisks(runDir, run.nvme);
    log(`booting ${what} (${run.boots} boot${run.boots > 1 ? 's' : ''}, ${nvme.length} NVMe)`);
    // Each run keeps its own console; the last one is console.log.
    if (index > 0) await rename(consoleLog, path.join(runDir, `console-run${index}.log`));
    const vm = await runVm({
      base,
      rootOverlay,
      seedImage,
      resultsImage,
      nvme,
      consoleLog,
      timeoutMs: (120 + run.boots * 180) * 1000 * timeScale,
      // The guest script learns its run from the kernel command line (run.sh passes E2E_RUN).
      append: `e2e.run=${number}`,
    });
    vms.push(vm);
    const evidence = `(evidence: ${path.relative(process.cwd(), runDir)})`;
    if (vm.timedOut) {
      // qemu exits 0 when the harness stops it at its deadline: say which of the two it was.
      log(`stopped qemu at its deadline, ${vm.seconds.toFixed(1)} s`);
      throw new Error(
        `${what}: the guest did not power off within ${vm.seconds.toFixed(0)} s ${evidence}; ` +
          `on a loaded machine, CTRVOL_E2E_TIME_SCALE=2 doubles every deadline\n${consoleTail()}`,
      );
    }
    log(`qemu exited ${vm.exitCode ?? vm.signal} after ${vm.seconds.toFixed(1)} s`);
    if (vm.panicked) {
      throw new Error(`${what}: the guest kernel panicked ${evidence}\n${consoleTail()}`);
    }
    if (vm.exitCode !== 0) {
      throw new Error(`${what}: qemu exited ${vm.exitCode}: ${vm.stderr}\n${consoleTail()}`);
    }

    // Read after every run, so that a failure stops the scenario before the next run starts.
    bootsSoFar += run.boots;
    boots = await readResults(what, runDir, resultsImage, consoleTail);
    const inThisRun = boots.filter((boot) => boot.run === number).map((boot) => boot.number);
    if (boots.length !== bootsSoFar || inThisRun.length !== run.boots) {
      throw new Error(
        `${what}: the guest reported boot(s) ${boots.map((b) => `${b.number} (run ${b.run})`).join(', ')}; ` +
          `this run should have had ${run.boots} of ${bootsSoFar} so far`,
      );
    }
  }
  if (boots.length !== totalBoots) {
    throw new Error(
      `${spec.id}: the guest reported ${boots.length} boot(s), the scenario has ${totalBoots}`,
    );
  }
  const vm = vms[vms.length - 1];
  if (vm === undefined) throw new Error(`${spec.id}: a scenario needs at least one run`);
  return { boots, vms, vm, base, runDir, consoleLog, consoleTail };
}

/**
 * The run's NVMe disks as qemu takes them: a file that an earlier run made is attached as it is,
 * a new one is made blank at its size.
 */
async function attachDisks(runDir: string, disks: DiskSpec[]): Promise<NvmeDisk[]> {
  const files = new Set<string>();
  const nvme: NvmeDisk[] = [];
  for (const disk of disks) {
    const file = path.join(runDir, disk.file);
    if (path.dirname(file) !== runDir || files.has(file)) {
      throw new Error(`NVMe disk file ${disk.file}: a plain file name, once per run`);
    }
    files.add(file);
    const bytes = (disk.sizeGiB ?? 2) * GiB;
    const existing = await stat(file).catch(() => undefined);
    if (existing === undefined) {
      await writeFile(file, '');
      await truncate(file, bytes);
    } else if (disk.sizeGiB !== undefined && existing.size !== bytes) {
      throw new Error(`NVMe disk file ${disk.file} already exists with ${existing.size} bytes`);
    }
    nvme.push({ serial: disk.serial, file });
  }
  return nvme;
}

/** Unpacks the result disk (the guest rewrites it whole at every power-off) into boots. */
async function readResults(
  what: string,
  runDir: string,
  resultsImage: string,
  consoleTail: () => string,
): Promise<Boot[]> {
  const resultsDir = path.join(runDir, 'results');
  await rm(resultsDir, { recursive: true, force: true });
  await mkdir(resultsDir);
  try {
    await execFileAsync('tar', ['-xf', resultsImage, '-C', resultsDir]);
  } catch (error) {
    throw new Error(
      `${what}: the result disk holds no archive (${String(error)})\n${consoleTail()}`,
    );
  }
  const bootDirs = (await readdir(resultsDir))
    .filter((name) => /^boot\d+$/.test(name))
    .sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)));
  if (bootDirs.length === 0) {
    const seedLog = path.join(resultsDir, 'seed.log');
    const seed = existsSync(seedLog) ? await readFile(seedLog, 'utf8') : '';
    throw new Error(`${what}: the guest wrote no results\n${seed}\n${consoleTail()}`);
  }
  // run.sh notes each boot's run before the scenario step starts.
  const boots = bootDirs.map((name) => {
    const dir = path.join(resultsDir, name);
    const run = Number(readFileSync(path.join(dir, 'run'), 'utf8'));
    return new Boot(Number(name.slice(4)), run, dir);
  });
  for (const boot of boots) {
    const rc = boot.text('scenario.rc').trim();
    if (rc !== '0') {
      throw new Error(
        `${what}: the guest script failed at boot ${boot.number} (exit ${rc}):\n` +
          boot.text('scenario.log'),
      );
    }
  }
  return boots;
}

/** `ctr images ls` as rows of REF and LABELS. */
export function parseImages(text: string): { ref: string; labels: string }[] {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const header = lines.shift() ?? '';
  const labelsAt = header.indexOf('LABELS');
  return lines.map((line) => ({
    ref: line.split(/\s+/)[0] ?? '',
    labels: labelsAt >= 0 ? line.slice(labelsAt).trim() : '',
  }));
}

export interface FindmntFs {
  source: string;
  target: string;
  fstype: string;
  uuid: string | null;
  label: string | null;
  options: string;
}

export function findmnt(boot: Boot, tag: string): FindmntFs | undefined {
  const name = `${tag}.findmnt.json`;
  if (boot.rc(name) !== 0) return undefined;
  return boot.json<{ filesystems: FindmntFs[] }>(name).filesystems[0];
}

/** The kernel name (nvme0n1, ...) of the NVMe disk with this serial, from lsblk. */
export function nvmeNameOf(boot: Boot, tag: string, serial: string): string | undefined {
  interface Dev {
    name: string;
    serial: string | null;
    children?: Dev[];
  }
  const devs = boot.json<{ blockdevices: Dev[] }>(`${tag}.lsblk.json`).blockdevices;
  return devs.find((d) => d.serial?.trim() === serial)?.name;
}

/** The NVMe controllers as the guest saw them (lib.sh's nvme_controllers), in PCI order. */
export function nvmeControllers(
  boot: Boot,
  tag: string,
): { serial: string; pciAddress: string; name: string }[] {
  return boot
    .text(`${tag}.nvme.txt`)
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [serial = '', pciAddress = '', name = ''] = line.trim().split(/\s+/);
      return { serial, pciAddress, name };
    })
    .sort((a, b) => a.pciAddress.localeCompare(b.pciAddress));
}
