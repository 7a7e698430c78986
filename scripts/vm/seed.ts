/**
 * A scenario's seed disk: an ext4 image (made with mke2fs -d, no loop device) that the guest's
 * e2e-init applies to the root filesystem on the first boot of the scenario's overlay. See
 * guest/apply.sh for its layout.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, copyFile, cp, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { repoRoot, vmDir } from './image.js';

const execFileAsync = promisify(execFile);

export const bundlePath = path.join(repoRoot, 'dist', 'ctrvol.cjs');

/**
 * Bundles the in-guest pod CLI (guest/pod.ts, on the project's CRI client) into one file for
 * the guest's Node.js, as scripts/build.mjs bundles the agent.
 */
export async function buildPodCli(outfile: string): Promise<void> {
  await build({
    entryPoints: [path.join(vmDir, 'guest', 'pod.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    legalComments: 'none',
    logLevel: 'warning',
  });
}

export interface SeedOptions {
  /** Scratch directory for the tree; the image is written next to it. */
  dir: string;
  /** The scenario's guest script, run once per boot by the runner. */
  scenarioScript: string;
  /** Variables for the scenario script (scenario.env), e.g. the data volume's serial. */
  env: Record<string, string>;
  /** Install ctrvol before the first boot, as an image build would, with this config. */
  bakeConfig?: string;
  /** udev rules to drop into /etc/udev/rules.d, by file name. */
  udevRules?: Record<string, string>;
  /** Units masked after ctrvol is installed, so that they never start. */
  maskUnits?: string[];
}

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

export async function buildSeed(o: SeedOptions): Promise<string> {
  if (!existsSync(bundlePath)) {
    throw new Error(`${bundlePath} is missing: run npm run build first`);
  }
  const tree = path.join(o.dir, 'seed');
  const image = path.join(o.dir, 'seed.img');
  await rm(tree, { recursive: true, force: true });
  const e2e = path.join(tree, 'e2e');
  await mkdir(e2e, { recursive: true });

  await copyFile(path.join(vmDir, 'guest', 'apply.sh'), path.join(tree, 'apply.sh'));
  for (const file of ['run.sh', 'lib.sh', 'e2e-run.service']) {
    await copyFile(path.join(vmDir, 'guest', file), path.join(e2e, file));
  }
  await copyFile(o.scenarioScript, path.join(e2e, 'scenario.sh'));
  await buildPodCli(path.join(e2e, 'pod.cjs'));
  const env = Object.entries(o.env)
    .map(([k, v]) => `${k}=${shellQuote(v)}`)
    .join('\n');
  await writeFile(path.join(e2e, 'scenario.env'), `${env}\n`);
  for (const file of ['run.sh', 'lib.sh', 'scenario.sh']) {
    await chmod(path.join(e2e, file), 0o755);
  }

  // ctrvol as the repository lays it out, which is what install.sh expects around itself, and
  // the same as the release tarball that a user-data script downloads.
  const ctrvol = path.join(tree, 'ctrvol');
  await mkdir(path.join(ctrvol, 'dist'), { recursive: true });
  await copyFile(bundlePath, path.join(ctrvol, 'dist', 'ctrvol.cjs'));
  await chmod(path.join(ctrvol, 'dist', 'ctrvol.cjs'), 0o755);
  await cp(path.join(repoRoot, 'systemd'), path.join(ctrvol, 'systemd'), { recursive: true });
  await cp(path.join(repoRoot, 'packaging'), path.join(ctrvol, 'packaging'), {
    recursive: true,
  });
  await execFileAsync('tar', [
    '-C',
    ctrvol,
    '-czf',
    path.join(tree, 'ctrvol.tar.gz'),
    ...(await readdir(ctrvol)),
  ]);

  if (o.bakeConfig !== undefined) {
    await writeFile(path.join(tree, 'bake'), '');
    await writeFile(path.join(tree, 'bake-config.yaml'), o.bakeConfig);
  }
  if (o.maskUnits !== undefined) {
    await writeFile(path.join(tree, 'mask'), o.maskUnits.map((unit) => `${unit}\n`).join(''));
  }
  if (o.udevRules !== undefined) {
    await mkdir(path.join(tree, 'udev'));
    for (const [name, text] of Object.entries(o.udevRules)) {
      await writeFile(path.join(tree, 'udev', name), text);
    }
  }

  await rm(image, { force: true });
  await execFileAsync('mke2fs', ['-q', '-t', 'ext4', '-L', 'e2e-seed', '-d', tree, image, '64M']);
  return image;
}
