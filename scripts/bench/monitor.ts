/**
 * The monitor's costs, for issue 6's targets: resident memory after 100 ticks (≤ 60 MiB), CPU
 * per tick without a prune (≤ 10 ms), and the time a tick takes to prune a full volume down to
 * the low mark. A bare `node` process's memory is measured beside it, as the floor any Node
 * agent starts from.
 *
 * Everything runs on a loop device and a private containerd made here, and is removed after.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { withCriClient } from '../../agent/cri/client.js';
import { importImage, startContainerd, type Containerd } from '../../test/helpers/containerd.js';
import { createLoopDevice, type LoopDevice } from '../../test/helpers/loop.js';
import { buildImageArchive } from '../../test/helpers/oci-image.js';
import { seedAmiStore } from '../../test/helpers/store.js';
import { makeTempDir } from '../../test/helpers/temp.js';

const ctrvol = path.resolve('dist/ctrvol.cjs');
const MiB = 1024 * 1024;

async function main(): Promise<void> {
  const temp = await makeTempDir('ctrvol-bench-monitor');
  let device: LoopDevice | undefined;
  let containerd: Containerd | undefined;
  try {
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
    await execa('node', [ctrvol, 'setup', '--root', root], { stdio: 'ignore' });
    containerd = await startContainerd({
      root: mountPoint,
      state: path.join(temp.path, 'state'),
      dir: path.join(temp.path, 'ctrd'),
    });
    const socketLine = `  socket: ${containerd.socket}`;
    const writeConfig = (prune: string) =>
      writeFile(config, `${[...base.slice(0, -1), socketLine, prune].join('\n')}\n`);

    // Ten cached images of 12 MB each, all seen long ago, so that prune may take them.
    const names: string[] = [];
    for (let index = 0; index < 10; index += 1) {
      const name = `registry.example/bench-${index}:1`;
      const built = await buildImageArchive({
        name,
        generatedBytes: 12 * 1000 * 1000,
        fileCount: 8,
        out: path.join(temp.path, `image-${index}.tar`),
        gzipLevel: 0,
      });
      await importImage(containerd, built.archivePath);
      names.push(name);
    }

    const ids = await withCriClient({ socket: containerd.socket }, (client) => client.listImages());
    const old = Date.now() - 24 * 3600_000;
    await mkdir(path.join(root, 'var/lib/ctrvol'), { recursive: true });
    await writeFile(
      path.join(root, 'var/lib/ctrvol/images.json'),
      JSON.stringify({
        version: 1,
        images: Object.fromEntries(ids.map((image) => [image.id, { firstSeen: old }])),
      }),
    );

    // 1. A hundred ticks with nothing to prune: memory at the end, CPU per tick.
    await writeConfig('prune:\n  highPercent: 98\n  lowPercent: 97\n  minAgeSeconds: 0');
    // With the V8 setting ctrvol-monitor.service gives it.
    const ticks = await execa('node', [ctrvol, 'monitor', '--ticks', '100', '--root', root], {
      env: { CTRVOL_LOG_LEVEL: 'warn', NODE_OPTIONS: '--max-semi-space-size=1' },
    });
    const summary = JSON.parse(ticks.stdout.split('\n').at(-1) ?? '{}') as {
      cpuMsPerTickMedian: number;
      cpuMsPerTickMax: number;
      rssBytes: number;
    };
    const bare = await execa('node', ['-e', 'console.log(process.memoryUsage.rss())']);
    const bareRss = Number(bare.stdout);

    // 2. One tick that finds the volume above the high mark and prunes to the low mark.
    const { stdout: df } = await execa('df', ['--output=pcent', mountPoint]);
    const percent = Number(df.split('\n')[1]?.replace('%', '').trim());
    const [high, low] = [Math.max(2, percent - 2), Math.max(1, percent - 12)];
    await writeConfig(`prune:\n  highPercent: ${high}\n  lowPercent: ${low}\n  minAgeSeconds: 0`);
    const started = performance.now();
    await execa('node', [ctrvol, 'monitor', '--once', '--root', root], {
      env: { CTRVOL_LOG_LEVEL: 'warn' },
    });
    const pruneMs = performance.now() - started;
    const state = JSON.parse(
      await readFile(path.join(root, 'var/lib/ctrvol/monitor.json'), 'utf8'),
    ) as {
      prune: { last?: { imagesRemoved: number; bytesFreed: number; reachedTarget: boolean } };
    };

    const rows = [
      [
        'monitor RSS after 100 ticks',
        `${(summary.rssBytes / MiB).toFixed(1)} MiB`,
        '≤ 60 MiB',
        summary.rssBytes <= 60 * MiB,
      ],
      [
        '  bare node process RSS (floor)',
        `${(bareRss / MiB).toFixed(1)} MiB`,
        `ratio ${(summary.rssBytes / bareRss).toFixed(2)}x`,
        true,
      ],
      [
        'CPU per tick, no prune (median)',
        `${summary.cpuMsPerTickMedian} ms`,
        '≤ 10 ms',
        summary.cpuMsPerTickMedian <= 10,
      ],
      ['  CPU per tick, worst of 100', `${summary.cpuMsPerTickMax} ms`, '', true],
      [
        'tick that prunes to the low mark',
        `${Math.round(pruneMs)} ms`,
        `${percent}% -> ≤ ${low}%`,
        state.prune.last?.reachedTarget === true,
      ],
      [
        '  images removed / bytes freed',
        `${state.prune.last?.imagesRemoved ?? 0} / ` +
          `${((state.prune.last?.bytesFreed ?? 0) / MiB).toFixed(1)} MiB`,
        '',
        true,
      ],
    ] as const;
    process.stdout.write(
      '\nctrvol monitor benchmark (ext4 loop volume, containerd 1.6, 11 images)\n',
    );
    for (const [what, value, target, met] of rows) {
      const mark = target === '' || target.startsWith('ratio') ? '' : met ? '  met' : '  MISSED';
      process.stdout.write(`${what.padEnd(36)} ${value.padStart(14)}  ${target}${mark}\n`);
    }
  } finally {
    await containerd?.stop();
    await device?.detach();
    await temp.cleanup();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exitCode = 1;
});
