/**
 * The monitor's costs, for issue 6's targets: resident memory after 100 ticks (≤ 60 MiB), CPU
 * per tick without a prune (≤ 10 ms), and the time a tick takes to prune a full volume down to
 * the low mark. A bare `node` process's memory is measured beside it, as the floor any Node
 * agent starts from.
 *
 * Memory is measured on the daemon as ctrvol-monitor.service runs it: the node flags and
 * environment are read from the unit file, the schedule fires every second, and images are put
 * back three times during the run so that four of the hundred ticks prune. Back-to-back ticks
 * (`--ticks 100`) never let the process idle and skip node-cron, so they give CPU per tick only.
 *
 * The machine this runs on is shared, so a figure alone says little. With
 * CTRVOL_BENCH_BASELINE=REV (a git revision) the bench also builds that revision and runs it,
 * with that revision's own unit file, in alternation with this tree, and prints the ratios.
 * CTRVOL_BENCH_ROUNDS sets how many daemon runs each gets (default 1, about two minutes each).
 *
 * Everything runs on a loop device and a private containerd made here, and is removed after.
 */
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { withCriClient } from '../../agent/cri/client.js';
import { importImage, startContainerd, type Containerd } from '../../test/helpers/containerd.js';
import { createLoopDevice, type LoopDevice } from '../../test/helpers/loop.js';
import { buildImageArchive } from '../../test/helpers/oci-image.js';
import { seedAmiStore } from '../../test/helpers/store.js';
import { makeTempDir } from '../../test/helpers/temp.js';
import { getMedian } from './stats.js';
import { parseUnitLaunch, type UnitLaunch } from './unit-launch.js';

const MiB = 1024 * 1024;
const tickRuns = 5;
const daemonTicks = 100;
/** Ticks after which the removed images are imported again, so that the next tick prunes. */
const refillAt = [25, 50, 75];

interface Subject {
  label: string;
  bundle: string;
  launch: UnitLaunch;
}

interface DaemonRun {
  rssBytes: number;
  anonBytes: number;
  fileBytes: number;
  prunes: number;
  stopMs: number;
}

function log(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

async function getSubject(label: string, dir: string): Promise<Subject> {
  const unit = await readFile(path.join(dir, 'systemd/ctrvol-monitor.service'), 'utf8');
  return { label, bundle: path.join(dir, 'dist/ctrvol.cjs'), launch: parseUnitLaunch(unit) };
}

/** Builds REV from git in DIR with this tree's node_modules. */
async function buildRevision(revision: string, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const archive = execa('git', ['archive', '--format=tar', revision], { buffer: false });
  const extract = execa('tar', ['-x', '-C', dir]);
  archive.stdout?.pipe(extract.stdin as NodeJS.WritableStream);
  await Promise.all([archive, extract]);
  await symlink(path.resolve('node_modules'), path.join(dir, 'node_modules'));
  await execa('node', ['scripts/build.mjs'], { cwd: dir });
}

/** The unit's environment and nothing from this shell's NODE_OPTIONS. */
function launchEnv(launch: UnitLaunch, extra: Record<string, string> = {}) {
  return { NODE_OPTIONS: '', ...launch.env, ...extra };
}

async function readStatusKb(pid: number): Promise<Record<string, number>> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8');
  const fields: Record<string, number> = {};
  for (const match of text.matchAll(/^(\w+):\s+(\d+) kB$/gm)) {
    fields[match[1] as string] = Number(match[2]);
  }
  return fields;
}

async function main(): Promise<void> {
  const temp = await makeTempDir('ctrvol-bench-monitor');
  let device: LoopDevice | undefined;
  let containerd: Containerd | undefined;
  try {
    const subjects = [await getSubject('this tree', process.cwd())];
    const baseline = process.env.CTRVOL_BENCH_BASELINE;
    if (baseline !== undefined && baseline !== '') {
      log(`building the baseline ${baseline}`);
      const dir = path.join(temp.path, 'baseline');
      await buildRevision(baseline, dir);
      subjects.push(await getSubject(`baseline ${baseline}`, dir));
    }
    const rounds = Number(process.env.CTRVOL_BENCH_ROUNDS ?? 1);
    if (!Number.isInteger(rounds) || rounds < 1) {
      throw new Error(`CTRVOL_BENCH_ROUNDS: got "${process.env.CTRVOL_BENCH_ROUNDS}"`);
    }

    const root = path.join(temp.path, 'root');
    const mountPoint = path.join(temp.path, 'containerd');
    await mkdir(path.join(root, 'etc/ctrvol'), { recursive: true });
    await mkdir(mountPoint);
    device = await createLoopDevice({ sizeBytes: 512 * MiB, dir: temp.path });
    await seedAmiStore(mountPoint);
    const base = [
      'volume:',
      `  device: ${device.path}`,
      '  filesystem: ext4',
      `  mountPoint: ${mountPoint}`,
      '  waitSeconds: 0',
      'containerd:',
      `  socket: ${path.join(temp.path, 'none.sock')}`,
    ];
    const config = path.join(root, 'etc/ctrvol/config.yaml');
    await writeFile(config, `${base.join('\n')}\n`);
    await execa('node', [subjects[0]!.bundle, 'setup', '--root', root], { stdio: 'ignore' });
    const ctrd = await startContainerd({
      root: mountPoint,
      state: path.join(temp.path, 'state'),
      dir: path.join(temp.path, 'ctrd'),
    });
    containerd = ctrd;
    const socketLine = `  socket: ${ctrd.socket}`;
    const writeConfig = (rest: string) =>
      writeFile(config, `${[...base.slice(0, -1), socketLine, rest].join('\n')}\n`);

    // Ten cached images of 12 MB each, all seen long ago, so that prune may take them.
    const archives = new Map<string, string>();
    for (let index = 0; index < 10; index += 1) {
      const name = `registry.example/bench-${index}:1`;
      const built = await buildImageArchive({
        name,
        generatedBytes: 12 * 1000 * 1000,
        fileCount: 8,
        out: path.join(temp.path, `image-${index}.tar`),
        gzipLevel: 0,
      });
      await importImage(ctrd, built.archivePath);
      archives.set(name, built.archivePath);
    }

    const listImages = () => withCriClient({ socket: ctrd.socket }, (c) => c.listImages());
    /** Imports what a prune removed; returns how many images came back. */
    const refill = async () => {
      const present = new Set((await listImages()).flatMap((image) => image.repoTags));
      const missing = [...archives].filter(([name]) => !present.has(name));
      for (const [, archive] of missing) {
        await importImage(ctrd, archive);
      }
      return missing.length;
    };
    const stateDir = path.join(root, 'var/lib/ctrvol');
    /** Every image back, all seen long ago, and no monitor state: each run starts alike. */
    const reset = async () => {
      await refill();
      const old = Date.now() - 24 * 3600_000;
      const ids = await listImages();
      await mkdir(stateDir, { recursive: true });
      await rm(path.join(stateDir, 'monitor.json'), { force: true });
      await writeFile(
        path.join(stateDir, 'images.json'),
        JSON.stringify({
          version: 1,
          images: Object.fromEntries(ids.map((image) => [image.id, { firstSeen: old }])),
        }),
      );
    };

    await reset();
    const { stdout: df } = await execa('df', ['--output=pcent', mountPoint]);
    const full = Number(df.split('\n')[1]?.replace('%', '').trim());
    const [high, low] = [Math.max(2, full - 2), Math.max(1, full - 12)];
    const prunesYaml = `prune:\n  highPercent: ${high}\n  lowPercent: ${low}\n  minAgeSeconds: 0`;

    // 1. A hundred ticks back to back with nothing to prune: CPU per tick.
    await writeConfig('prune:\n  highPercent: 98\n  lowPercent: 97\n  minAgeSeconds: 0');
    const ticks = new Map(subjects.map((subject) => [subject, [] as TickSummary[]]));
    for (let run = 0; run < tickRuns; run += 1) {
      for (const subject of subjects) {
        log(`${daemonTicks} ticks back to back: ${subject.label} (${run + 1}/${tickRuns})`);
        ticks.get(subject)?.push(await runTicks(subject, root));
      }
    }

    // 2. The daemon on a one-second schedule, pruning four times in a hundred ticks.
    await writeConfig(`${prunesYaml}\nmonitor:\n  schedule: "* * * * * *"`);
    const daemon = new Map(subjects.map((subject) => [subject, [] as DaemonRun[]]));
    const bare: number[] = [];
    for (let round = 0; round < rounds; round += 1) {
      for (const subject of subjects) {
        await reset();
        log(`the daemon to ${daemonTicks} ticks: ${subject.label} (${round + 1}/${rounds})`);
        daemon.get(subject)?.push(await runDaemon(subject, root, stateDir, temp.path, refill));
        const { stdout } = await execa('node', ['-e', 'console.log(process.memoryUsage.rss())']);
        bare.push(Number(stdout));
      }
    }

    // 3. One tick that finds the volume above the high mark and prunes to the low mark.
    await reset();
    await writeConfig(prunesYaml);
    const current = subjects[0] as Subject;
    const started = performance.now();
    await execa(
      'node',
      [...current.launch.nodeArgs, current.bundle, 'monitor', '--once', '--root', root],
      { env: launchEnv(current.launch, { CTRVOL_LOG_LEVEL: 'warn' }) },
    );
    const pruneMs = performance.now() - started;
    const state = JSON.parse(await readFile(path.join(stateDir, 'monitor.json'), 'utf8')) as {
      prune: { last?: { imagesRemoved: number; bytesFreed: number; reachedTarget: boolean } };
    };

    const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;
    const rssOf = (subject: Subject) => getMedian(daemon.get(subject)!.map((r) => r.rssBytes));
    const cpuOf = (subject: Subject) =>
      getMedian(ticks.get(subject)!.map((r) => r.cpuMsPerTickMedian));
    const bareRss = getMedian(bare);
    const rows: [string, string, string, boolean | undefined][] = [];
    for (const subject of subjects) {
      const runs = daemon.get(subject)!;
      const tickRuns = ticks.get(subject)!;
      const flags = [...subject.launch.nodeArgs, subject.launch.env.NODE_OPTIONS ?? ''].join(' ');
      rows.push([`${subject.label}: node ${flags.trim()}`, '', '', undefined]);
      rows.push([
        `  daemon RSS after ${daemonTicks} ticks`,
        mib(rssOf(subject)),
        '≤ 60 MiB',
        rssOf(subject) <= 60 * MiB,
      ]);
      rows.push([
        '    anonymous / file-backed',
        `${mib(getMedian(runs.map((r) => r.anonBytes)))} / ` +
          mib(getMedian(runs.map((r) => r.fileBytes))),
        `ratio to bare node ${(rssOf(subject) / bareRss).toFixed(2)}x`,
        undefined,
      ]);
      rows.push([
        '    prunes during the run, stop time',
        `${runs.map((r) => r.prunes).join(', ')}, ` +
          `${Math.round(getMedian(runs.map((r) => r.stopMs)))} ms`,
        '',
        undefined,
      ]);
      rows.push([
        '  CPU per tick, no prune (median)',
        `${cpuOf(subject)} ms`,
        '≤ 10 ms',
        cpuOf(subject) <= 10,
      ]);
      rows.push([
        '    worst tick; RSS of back-to-back',
        `${Math.max(...tickRuns.map((r) => r.cpuMsPerTickMax))} ms; ` +
          mib(getMedian(tickRuns.map((r) => r.rssBytes))),
        '',
        undefined,
      ]);
    }
    rows.push(['bare node process RSS (floor)', mib(bareRss), '', undefined]);
    const [mine, other] = subjects;
    if (other !== undefined && mine !== undefined) {
      rows.push([
        `this tree ÷ ${other.label}`,
        `RSS ${(rssOf(mine) / rssOf(other)).toFixed(2)}x`,
        `CPU ${(cpuOf(mine) / cpuOf(other)).toFixed(2)}x`,
        undefined,
      ]);
    }
    rows.push([
      'tick that prunes to the low mark',
      `${Math.round(pruneMs)} ms`,
      `${full}% -> ≤ ${low}%`,
      state.prune.last?.reachedTarget === true,
    ]);
    rows.push([
      '  images removed / bytes freed',
      `${state.prune.last?.imagesRemoved ?? 0} / ${mib(state.prune.last?.bytesFreed ?? 0)}`,
      '',
      undefined,
    ]);

    process.stdout.write(
      '\nctrvol monitor benchmark (ext4 loop volume, containerd 1.6, 11 images)\n',
    );
    for (const [what, value, target, met] of rows) {
      const mark = met === undefined ? '' : met ? '  met' : '  MISSED';
      process.stdout.write(`${what.padEnd(38)} ${value.padStart(20)}  ${target}${mark}\n`);
    }
  } finally {
    await containerd?.stop();
    await device?.detach();
    await temp.cleanup();
  }
}

interface TickSummary {
  cpuMsPerTickMedian: number;
  cpuMsPerTickMax: number;
  rssBytes: number;
}

async function runTicks(subject: Subject, root: string): Promise<TickSummary> {
  const result = await execa(
    'node',
    [
      ...subject.launch.nodeArgs,
      subject.bundle,
      'monitor',
      '--ticks',
      String(daemonTicks),
      '--root',
      root,
    ],
    { env: launchEnv(subject.launch, { CTRVOL_LOG_LEVEL: 'warn' }) },
  );
  return JSON.parse(result.stdout.split('\n').at(-1) ?? '{}') as TickSummary;
}

/**
 * Starts the daemon, counts its ticks by the last-tick time it records, puts the pruned images
 * back at the refill points, and reads its memory after the last tick, before stopping it with
 * SIGTERM as systemd does.
 */
async function runDaemon(
  subject: Subject,
  root: string,
  stateDir: string,
  dir: string,
  refill: () => Promise<number>,
): Promise<DaemonRun> {
  const logFile = path.join(dir, `daemon-${subject.label.replace(/\W+/g, '-')}.log`);
  const child = execa(
    'node',
    [...subject.launch.nodeArgs, subject.bundle, 'monitor', '--root', root],
    {
      env: launchEnv(subject.launch),
      stdin: 'ignore',
      stdout: { file: logFile, append: true },
      stderr: { file: logFile, append: true },
      reject: false,
    },
  );
  const pid = child.pid as number;
  const stateFile = path.join(stateDir, 'monitor.json');
  let lastTick: string | undefined;
  let count = 0;
  let refilling: Promise<unknown> = Promise.resolve();
  const pending = [...refillAt];
  let exited = false;
  void child.finally(() => {
    exited = true;
  });
  let state: { lastTick?: { at: string }; prune?: { runsTotal: number } } = {};
  while (count < daemonTicks) {
    if (exited) {
      throw new Error(`the daemon exited after ${count} ticks; see ${logFile}`);
    }

    await sleep(50);
    try {
      state = JSON.parse(await readFile(stateFile, 'utf8')) as typeof state;
    } catch {
      continue;
    }
    if (state.lastTick !== undefined && state.lastTick.at !== lastTick) {
      lastTick = state.lastTick.at;
      count += 1;
      if (pending[0] !== undefined && count >= pending[0]) {
        pending.shift();
        await refilling;
        refilling = refill();
      }
    }
  }

  const status = await readStatusKb(pid);
  await refilling;
  const stopping = performance.now();
  child.kill('SIGTERM');
  const result = await child;
  const stopMs = performance.now() - stopping;
  if (result.exitCode !== 0) {
    throw new Error(`the daemon ended with ${result.exitCode ?? result.signal}; see ${logFile}`);
  }

  return {
    rssBytes: (status.VmRSS ?? 0) * 1024,
    anonBytes: (status.RssAnon ?? 0) * 1024,
    fileBytes: (status.RssFile ?? 0) * 1024,
    prunes: state.prune?.runsTotal ?? 0,
    stopMs,
  };
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exitCode = 1;
});
