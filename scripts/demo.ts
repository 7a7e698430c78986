/**
 * `npm run demo`: the main job, end to end, on a throwaway machine of its own.
 *
 * As root it makes a temporary root, a mount point standing in for /var/lib/containerd, and a
 * store there the way an AL2023 EKS AMI caches it (a real containerd store with the pinned pause
 * image when containerd is installed, a tree of stand-in files otherwise). The volume is a loop
 * device over a sparse file, or a spare disk named on the command line. Then it runs
 * `ctrvol setup`, shows `ctrvol status` and, with containerd, what a containerd started on the
 * volume lists; runs setup a second time to show that nothing changes; and cleans up.
 *
 *   npm run demo                 a loop device over a sparse 2 GiB file
 *   npm run demo -- /dev/xvdf    a spare, blank disk (ctrvol refuses anything else)
 *   npm run demo -- --keep       leave the mount and the loop device for a look around
 */
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { listImages, SANDBOX_IMAGE, startContainerd } from '../test/helpers/containerd.js';
import { createLoopDevice } from '../test/helpers/loop.js';
import { seedAmiStore, seedStandInStore } from '../test/helpers/store.js';
import { makeTempDir } from '../test/helpers/temp.js';

const ctrvol = path.resolve('dist/ctrvol.cjs');

function say(text: string): void {
  process.stdout.write(`\n\x1b[1m== ${text}\x1b[0m\n`);
}

function hasCommand(name: string): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v "$1"', 'sh', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function runCtrvol(args: string[]): Promise<number> {
  process.stdout.write(`$ ctrvol ${args.join(' ')}\n`);
  const result = await execa('node', [ctrvol, ...args], { stdio: 'inherit', reject: false });
  return result.exitCode ?? 1;
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('demo: run as root: it makes a loop device and mounts it\n');
    return 3;
  }

  const args = process.argv.slice(2);
  const keep = args.includes('--keep');
  const spare = args.find((arg) => arg.startsWith('/dev/'));
  const temp = await makeTempDir('ctrvol-demo');
  const cleanups: (() => Promise<unknown>)[] = [];
  try {
    const root = path.join(temp.path, 'root');
    const mountPoint = path.join(temp.path, 'var-lib-containerd');
    await mkdir(mountPoint, { recursive: true });

    say(
      spare === undefined ? 'A 2 GiB loop device stands in for the EBS volume' : `Using ${spare}`,
    );
    const device =
      spare ??
      (await createLoopDevice({ sizeBytes: 2 * 1024 ** 3, dir: temp.path }).then((loop) => {
        cleanups.push(loop.detach);
        return loop.path;
      }));
    process.stdout.write(`volume: ${device}\nroot:   ${root}\nstore:  ${mountPoint}\n`);

    const withContainerd = hasCommand('containerd') && hasCommand('ctr');
    say(
      withContainerd
        ? 'Caching images the way the AL2023 AMI build does (real containerd, pinned pause image)'
        : 'containerd is not installed: a stand-in store of files takes its place',
    );
    if (withContainerd) {
      const seeded = await seedAmiStore(mountPoint, { extraBytes: 40 << 20, fileCount: 500 });
      process.stdout.write(`cached: ${seeded.images.join(', ')}\n`);
    } else {
      await seedStandInStore(mountPoint, { bytes: 40 << 20, fileCount: 500 });
    }

    const configFile = path.join(root, 'etc/ctrvol/config.yaml');
    await mkdir(path.dirname(configFile), { recursive: true });
    await writeFile(
      configFile,
      [
        'volume:',
        `  device: ${device}`,
        '  filesystem: xfs',
        `  mountPoint: ${mountPoint}`,
        '  waitSeconds: 5',
        'containerd:',
        `  socket: ${path.join(temp.path, 'containerd.sock')}`,
        '',
      ].join('\n'),
    );
    process.stdout.write(`config (${configFile}):\n`);
    process.stdout.write(execFileSync('cat', [configFile], { encoding: 'utf8' }));

    say('ctrvol setup');
    cleanups.push(() => execa('umount', [mountPoint], { reject: false }));
    const code = await runCtrvol(['setup', '--root', root]);
    if (code !== 0) {
      return code;
    }

    say('ctrvol status');
    await runCtrvol(['status', '--root', root]);

    if (withContainerd) {
      say('A containerd started on the volume still has the pinned pause image');
      const containerd = await startContainerd({
        root: mountPoint,
        state: path.join(temp.path, 'state'),
        dir: path.join(temp.path, 'ctrd'),
      });
      try {
        for (const image of await listImages(containerd)) {
          if (!image.name.startsWith('sha256:')) {
            const pinned = image.labels['io.cri-containerd.pinned'] === 'pinned' ? 'pinned' : '';
            const mark = image.name === SANDBOX_IMAGE ? '  <- the sandbox image' : '';
            process.stdout.write(`${image.name}  ${image.status}  ${pinned}${mark}\n`);
          }
        }
      } finally {
        await containerd.stop();
      }
    }

    say('A second run changes nothing');
    await runCtrvol(['setup', '--root', root]);

    if (keep) {
      process.stdout.write(
        `\nKept: ${mountPoint} on ${device}; remove with umount and losetup -d.\n`,
      );
      cleanups.length = 0;
      return 0;
    }

    say('Cleaning up');
    return 0;
  } finally {
    for (const cleanup of cleanups.reverse()) {
      await cleanup();
    }

    if (cleanups.length > 0 || !keep) {
      await temp.cleanup();
    }
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`demo: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exitCode = 1;
  },
);
