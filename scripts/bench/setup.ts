/**
 * `npm run bench`: how long `ctrvol setup` takes to put a ~300 MB AMI-like containerd store on a
 * fresh 8 GiB volume, side by side with the same work done by hand in shell and with the popular
 * recipe, plus the agent's own overhead and its cold start. See options.ts for the flags.
 *
 * Needs root (loop devices, mkfs, mount), containerd (to seed the store) and a built
 * dist/ctrvol.cjs (the npm script builds it). Everything it makes lives in its own temp dirs and
 * loop devices, and is removed on the way out, failed or not.
 */
import { access, copyFile, mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { seedAmiStore } from '../../test/helpers/store.js';
import { makeTempDir, type TempDir } from '../../test/helpers/temp.js';
import { ctrvolBinary } from '../../test/integration/rig.js';
import { measureColdStart } from './cold-start.js';
import { parseBenchOptions, usage, type BenchOptions } from './options.js';
import { formatReport, getBenchSummary, type StoreInfo } from './report.js';
import { checkOutcome, countEntries, deviceBytes, makeSandbox } from './sandbox.js';
import { variants, type RunSample } from './variants.js';

const stop = new AbortController();
let signalCount = 0;

// The first signal lets the current child be cancelled and every mount, loop device and temp dir
// be removed; a second one gives up on that and exits at once.
function handleSignal(signal: NodeJS.Signals): void {
  signalCount += 1;
  if (signalCount > 1) {
    process.exit(130);
  }

  process.stderr.write(`bench: ${signal}: stopping after cleanup (again to exit at once)\n`);
  stop.abort(new Error(`interrupted by ${signal}`));
}

function log(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

async function seedTemplate(dir: string, options: BenchOptions): Promise<StoreInfo> {
  const seeded = await seedAmiStore(dir, {
    extraBytes: options.storeBytes,
    fileCount: options.storeFiles,
  });
  // Reading the template once puts all of it in the page cache before the first round, so the
  // first run does not pay for disk reads that later runs skip. The machine's caches are never
  // dropped: every variant runs warm.
  await execa('sh', ['-c', 'find "$1" -type f -exec cat {} + >/dev/null', 'warm', dir]);
  const du = await execa('du', ['--summarize', '--block-size=1', dir]);

  return {
    bytes: Number(du.stdout.split('\t')[0]),
    entries: await countEntries(dir),
    images: seeded.images.length,
    seedMs: seeded.durationMs,
  };
}

interface Rounds {
  samples: RunSample[];
  /** The last ctrvol run's JSON log, kept for reading where its time went line by line. */
  ctrvolLog: string;
}

async function runRounds(
  template: string,
  binary: string,
  store: StoreInfo,
  options: BenchOptions,
): Promise<Rounds> {
  const samples: RunSample[] = [];
  let ctrvolLog = '';
  // Filled by the first first-run variant; each code-cache run gets a copy.
  const codeCacheDir = path.join(path.dirname(template), 'code-cache');
  for (let round = 1 - options.warmup; round <= options.rounds; round += 1) {
    const name =
      round < 1
        ? `warm-up ${round + options.warmup}/${options.warmup}`
        : `round ${round}/${options.rounds}`;
    for (const variant of variants) {
      stop.signal.throwIfAborted();
      const sandbox = await makeSandbox(template);
      try {
        const run = await variant.run({
          sandbox,
          ctrvolBinary: binary,
          codeCacheDir,
          signal: stop.signal,
        });
        const sample = { ...run.sample, round };
        await checkOutcome(sandbox, store.entries);
        if (variant.name === 'ctrvol') {
          ctrvolLog = run.log;
        }

        log(`${name} ${variant.name}: ${Math.round(sample.wallMs)} ms`);
        if (round >= 1) {
          samples.push(sample);
        }
      } finally {
        await sandbox.dispose();
      }
    }
  }

  return { samples, ctrvolLog };
}

async function main(options: BenchOptions): Promise<void> {
  const benchStarted = performance.now();
  // Other work on this 2-core machine skews every figure; the load average makes that visible.
  const loadAtStart = os.loadavg()[0] ?? Number.NaN;
  if (process.getuid?.() !== 0) {
    throw new Error('the bench needs root: loop devices, mkfs and mount');
  }

  await access(ctrvolBinary).catch(() => {
    throw new Error(`${ctrvolBinary} is missing: run npm run build (npm run bench does)`);
  });

  let workDir: TempDir | undefined;
  try {
    workDir = await makeTempDir('ctrvol-bench');
    if (options.backing === 'tmpfs') {
      // A size limit, not a reservation: the store, one run's copy of it and one volume's
      // written blocks need about three times the store; the rest is headroom.
      const size = `size=${Math.max(1, Math.ceil((options.storeBytes * 8) / 1e9))}g`;
      await execa('mount', [
        '-t',
        'tmpfs',
        '-o',
        `${size},mode=0700`,
        'ctrvol-bench',
        workDir.path,
      ]);
    }

    // Every temp dir the helpers make (rig, seed, containerd state) now lands in here, and so
    // on the tmpfs when there is one; the cleanup below unmounts and removes all of it.
    process.env.TMPDIR = workDir.path;
    const template = path.join(workDir.path, 'store');
    // Whoever else works in this checkout may rebuild dist/ meanwhile; every run must use the
    // same bundle, and none may catch one half-written.
    const binary = path.join(workDir.path, 'ctrvol.cjs');
    await copyFile(ctrvolBinary, binary);
    log(`seeding the store once: ${options.storeBytes / 1e6} MB, ${options.storeFiles} files`);
    const store = await seedTemplate(template, options);
    log(`seeded ${store.entries} entries, ${store.bytes} bytes in ${Math.round(store.seedMs)} ms`);

    const { samples, ctrvolLog } = await runRounds(template, binary, store, options);
    stop.signal.throwIfAborted();
    log(`cold start: ${options.coldRuns} alternating runs of each command`);
    const coldStart = measureColdStart(binary, options.coldRuns);
    const summary = getBenchSummary(samples, coldStart);
    const benchSeconds = (performance.now() - benchStarted) / 1000;
    const load = { atStart: loadAtStart, atEnd: os.loadavg()[0] ?? Number.NaN };
    const report = formatReport({
      store,
      rounds: options.rounds,
      warmup: options.warmup,
      backing: options.backing,
      load,
      variantList: variants,
      summary,
      coldStart,
    });
    process.stdout.write(`\n${report}\n\nbench took ${benchSeconds.toFixed(0)} s\n`);

    const outDir = path.resolve('.cache/bench');
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const outFile = path.join(outDir, `setup-${stamp}.json`);
    await mkdir(outDir, { recursive: true });
    const machine = {
      cpus: os.cpus().length,
      kernel: os.release(),
      node: process.version,
      memoryBytes: os.totalmem(),
    };
    const result = {
      at: new Date().toISOString(),
      benchSeconds,
      load,
      machine,
      options,
      deviceBytes,
      store,
      summary,
      coldStart,
      samples,
    };
    await writeFile(outFile, `${JSON.stringify(result, null, 2)}\n`);
    const logFile = outFile.replace(/\.json$/, '-ctrvol.log');
    await writeFile(logFile, ctrvolLog);
    process.stdout.write(`results: ${path.relative(process.cwd(), outFile)}\n`);
    process.stdout.write(`last ctrvol log: ${path.relative(process.cwd(), logFile)}\n`);
  } finally {
    await workDir?.cleanup();
  }
}

process.on('SIGINT', handleSignal);
process.on('SIGTERM', handleSignal);
try {
  const options = parseBenchOptions(process.argv.slice(2));
  if (options === 'help') {
    process.stdout.write(usage);
  } else {
    await main(options);
  }
} catch (error) {
  // A missed target is information; a run that failed makes every figure suspect.
  process.stderr.write(`bench failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
} finally {
  process.off('SIGINT', handleSignal);
  process.off('SIGTERM', handleSignal);
}
