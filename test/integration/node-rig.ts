import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { withCriClient } from '../../agent/cri/client.js';
import {
  importImage,
  listImages,
  startContainerd,
  type Containerd,
} from '../helpers/containerd.js';
import { buildImageArchive } from '../helpers/oci-image.js';
import { seedAmiStore } from '../helpers/store.js';
import { ctrvolBinary, makeRig, type Rig } from './rig.js';

export interface Node {
  rig: Rig;
  containerd: Containerd;
  ctrvol(...args: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }>;
  names(): Promise<string[]>;
}

export const hour = 3600_000;

/**
 * A node in miniature: a small volume set up by ctrvol itself, a containerd on it with the
 * pinned pause image, and a config pointing ctrvol at that containerd's socket.
 */
export async function makeNode(
  t: { after(fn: () => Promise<void>): void },
  options: { sizeBytes?: number; pruneYaml?: string; archive?: boolean } = {},
): Promise<Node> {
  const rig = await makeRig(t, { sizeBytes: options.sizeBytes ?? 320 << 20, filesystem: 'ext4' });
  const archive = path.join(rig.dir, 'pause.tar');
  await seedAmiStore(rig.mountPoint, options.archive === false ? {} : { pauseTarOut: archive });
  const setup = await rig.setup();
  assert.equal(setup.exitCode, 0, setup.stderr);
  const containerd = await startContainerd({
    root: rig.mountPoint,
    state: path.join(rig.dir, 'state'),
    dir: path.join(rig.dir, 'ctrd'),
  });
  rig.defer(() => containerd.stop());
  const config = await readFile(rig.configFile, 'utf8');
  await rig.writeConfig(
    config.replace(/ {2}socket: .*/, `  socket: ${containerd.socket}`) +
      `  config: ${containerd.configPath}\n` +
      `  sandboxImageArchive: ${options.archive === false ? '/nonexistent/pause.tar' : archive}\n` +
      (options.pruneYaml ?? ''),
  );
  const ctrvol = async (...args: string[]) => {
    const result = await execa(
      'node',
      [ctrvolBinary, ...args, '--root', rig.root, '--log-format', 'json'],
      { reject: false, stdin: 'ignore' },
    );
    return { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
  };
  const names = async () =>
    (await listImages(containerd))
      .map((image) => image.name)
      .filter((name) => !name.startsWith('sha256:'))
      .sort();

  return { rig, containerd, ctrvol, names };
}

/** Imports filler images of random (incompressible) content and returns their names. */
export async function addImages(node: Node, count: number, bytes: number): Promise<string[]> {
  const names: string[] = [];
  for (let index = 0; index < count; index += 1) {
    const name = `registry.example/filler-${String(index).padStart(2, '0')}:1`;
    const built = await buildImageArchive({
      name,
      generatedBytes: bytes,
      fileCount: 4,
      out: path.join(node.rig.dir, `filler-${index}.tar`),
      gzipLevel: 0,
    });
    await importImage(node.containerd, built.archivePath);
    names.push(name);
  }

  return names;
}

/** Sets when ctrvol last saw each image used: the first name the longest ago. */
export async function writeLastUsed(node: Node, names: string[]): Promise<void> {
  // Image ids as CRI reports them (the config digest), through ctrvol's own client.
  const images = await withCriClient({ socket: node.containerd.socket }, (client) =>
    client.listImages(),
  );
  const now = Date.now();
  const record: Record<string, { firstSeen: number; lastUsed?: number }> = {};
  for (const image of images) {
    const index = names.findIndex((name) => image.repoTags.includes(name));
    record[image.id] =
      index === -1
        ? { firstSeen: now - 100 * hour }
        : { firstSeen: now - 100 * hour, lastUsed: now - (names.length - index) * hour };
  }

  const file = path.join(node.rig.root, 'var/lib/ctrvol/images.json');
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, JSON.stringify({ version: 1, images: record }));
}

export function jsonLines(stderr: string): Record<string, unknown>[] {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

export async function usedPercent(dir: string): Promise<number> {
  const { stdout } = await execa('df', ['--output=pcent', dir]);
  return Number(stdout.split('\n')[1]?.replace('%', '').trim());
}
