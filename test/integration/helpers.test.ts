import assert from 'node:assert/strict';
import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { execa } from 'execa';
import {
  PINNED_LABEL,
  SANDBOX_IMAGE,
  exportImage,
  importImage,
  listImages,
  startContainerd,
  type Containerd,
} from '../helpers/containerd.js';
import {
  blockDeviceSize,
  createLoopDevice,
  growLoopDevice,
  mountsOfDevice,
} from '../helpers/loop.js';
import { mountsUnder } from '../helpers/mounts.js';
import { buildImageArchive } from '../helpers/oci-image.js';
import {
  diffManifests,
  seedAmiStore,
  seedStandInStore,
  treeChecksum,
  treeManifest,
} from '../helpers/store.js';
import { cleanupStack, makeTempDir } from '../helpers/temp.js';

const isRoot = process.getuid?.() === 0;
const rootOnly = isRoot ? {} : { skip: 'needs root (loop devices, containerd, mknod, xattrs)' };

async function losetupLines(backingFile: string): Promise<string> {
  const { stdout } = await execa('losetup', ['-j', backingFile], { stdin: 'ignore' });
  return stdout.trim();
}

/** Starts containerd and registers its stop before anything can fail. */
async function startPrivateContainerd(
  defer: (fn: () => unknown) => void,
  dir: string,
  root: string,
): Promise<Containerd> {
  const ctrd = await startContainerd({ root, state: path.join(dir, 'state'), dir });
  defer(() => ctrd.stop());
  return ctrd;
}

describe('test helpers', rootOnly, () => {
  test('a loop device over a sparse file grows, and detach removes it', async (t) => {
    const defer = cleanupStack(t);
    const temp = await makeTempDir('ctrvol-loop');
    defer(() => temp.cleanup());
    const dev = await createLoopDevice({ sizeBytes: 64 * 1024 * 1024, dir: temp.path });
    defer(() => dev.detach());

    assert.match(dev.path, /^\/dev\/loop\d+$/);
    assert.ok((await losetupLines(dev.backingFile)).startsWith(`${dev.path}:`));
    assert.equal(await blockDeviceSize(dev.path), 64 * 1024 * 1024);
    const backing = await stat(dev.backingFile);
    assert.ok(backing.blocks * 512 < 1024 * 1024, 'the backing file should be sparse');

    await growLoopDevice(dev, 96 * 1024 * 1024);
    assert.equal(await blockDeviceSize(dev.path), 96 * 1024 * 1024);

    await dev.detach();
    assert.equal(await losetupLines(dev.backingFile), '');
    await assert.rejects(stat(dev.backingFile), { code: 'ENOENT' });
  });

  test('detach unmounts what is mounted from the device first', async (t) => {
    const defer = cleanupStack(t);
    const temp = await makeTempDir('ctrvol-loop');
    defer(() => temp.cleanup());
    const dev = await createLoopDevice({ sizeBytes: 64 * 1024 * 1024, dir: temp.path });
    defer(() => dev.detach());
    const mountPoint = path.join(temp.path, 'mnt');
    await execa('mkdir', [mountPoint]);
    await execa('mkfs.ext4', ['-q', '-F', '-E', 'nodiscard', dev.path], { stdin: 'ignore' });
    await execa('mount', [dev.path, mountPoint], { stdin: 'ignore' });
    assert.deepEqual(await mountsOfDevice(dev.path), [mountPoint]);

    await dev.detach();
    assert.deepEqual(await mountsUnder(mountPoint), []);
    assert.equal(await losetupLines(dev.backingFile), '');
  });

  test('a locally built image imports, lists complete and is pinned', async (t) => {
    const defer = cleanupStack(t);
    const temp = await makeTempDir('ctrvol-img');
    defer(() => temp.cleanup());
    const built = await buildImageArchive({
      name: SANDBOX_IMAGE,
      files: [
        { path: 'pause', content: '#!/bin/sh\n', mode: 0o755 },
        { path: 'var/blob', sizeBytes: 300_000 },
      ],
      fileCount: 50,
      out: path.join(temp.path, 'pause.tar'),
    });
    assert.equal(built.name, SANDBOX_IMAGE);
    assert.equal(built.layers.length, 1);

    const ctrd = await startPrivateContainerd(defer, temp.path, path.join(temp.path, 'root'));
    const names = await importImage(ctrd, built.archivePath, { pinned: true });
    assert.deepEqual(names, [SANDBOX_IMAGE]);

    const images = await listImages(ctrd);
    const pause = images.find((i) => i.name === SANDBOX_IMAGE);
    assert.ok(pause, `pause image missing from ${images.map((i) => i.name).join(', ')}`);
    assert.equal(pause.digest, built.manifestDigest);
    assert.equal(pause.status, 'complete');
    assert.equal(pause.unpacked, true);
    assert.equal(pause.labels[PINNED_LABEL], 'pinned');
    assert.equal(pause.pinned, true);
    assert.ok(pause.sizeBytes > 300_000, `size ${pause.size}`);

    // The export stands in for /etc/eks/pause.tar; it must import again under the same name.
    const exported = path.join(temp.path, 'export.tar');
    await exportImage(ctrd, SANDBOX_IMAGE, exported);
    await ctrd.ctr(['-n', 'k8s.io', 'images', 'rm', SANDBOX_IMAGE]);
    assert.deepEqual(await importImage(ctrd, exported), [SANDBOX_IMAGE]);
    const again = (await listImages(ctrd)).find((i) => i.name === SANDBOX_IMAGE);
    assert.equal(again?.status, 'complete');
    assert.equal(again?.pinned, false, 'a fresh import carries no pin');
  });

  test('a fresh containerd lists a seeded AMI store with its pinned pause image', async (t) => {
    const defer = cleanupStack(t);
    const temp = await makeTempDir('ctrvol-ami');
    defer(() => temp.cleanup());
    const root = path.join(temp.path, 'var-lib-containerd');
    const seeded = await seedAmiStore(root, {
      extraBytes: 8_000_000,
      fileCount: 200,
      pauseTarOut: path.join(temp.path, 'pause.tar'),
    });
    assert.equal(seeded.pauseImage, SANDBOX_IMAGE);
    assert.deepEqual(seeded.pinnedImages, [SANDBOX_IMAGE]);
    assert.equal(seeded.images.length, 2);
    assert.deepEqual(await mountsUnder(root), [], 'seeding must leave the root unmounted');
    assert.ok((await stat(path.join(temp.path, 'pause.tar'))).size > 0);

    const ctrd = await startPrivateContainerd(defer, path.join(temp.path, 'again'), root);
    const images = await listImages(ctrd);
    const pause = images.find((i) => i.name === SANDBOX_IMAGE);
    assert.ok(pause, `pause image missing:\n${await ctrd.logTail()}`);
    assert.equal(pause.status, 'complete');
    assert.equal(pause.unpacked, true);
    assert.equal(pause.pinned, true);
    for (const name of seeded.images) {
      assert.equal(images.find((i) => i.name === name)?.status, 'complete', name);
    }
    await ctrd.stop();
    assert.deepEqual(await mountsUnder(root), []);

    // Whiteouts and opaque directories from the filler's upper layer are in the store.
    const manifest = await treeManifest(root);
    assert.ok(manifest.some((l) => l.includes('"type":"char"') && l.includes('"rdev":"0:0"')));
    assert.ok(manifest.some((l) => l.includes('trusted.overlay.opaque=0x79')));
  });

  test('stopping containerd leaves the volume mounted at its root in place', async (t) => {
    const defer = cleanupStack(t);
    const temp = await makeTempDir('ctrvol-vol');
    defer(() => temp.cleanup());
    const dev = await createLoopDevice({ sizeBytes: 320 * 1024 * 1024, dir: temp.path });
    defer(() => dev.detach());
    const root = path.join(temp.path, 'root');
    await execa('mkdir', [root]);
    await execa('mkfs.xfs', ['-q', '-K', dev.path], { stdin: 'ignore' });
    await execa('mount', [dev.path, root], { stdin: 'ignore' });

    const built = await buildImageArchive({
      name: SANDBOX_IMAGE,
      files: [{ path: 'pause', content: '#!/bin/sh\n', mode: 0o755 }],
      out: path.join(temp.path, 'pause.tar'),
    });
    const ctrd = await startPrivateContainerd(defer, path.join(temp.path, 'c'), root);
    await importImage(ctrd, built.archivePath, { pinned: true });
    await ctrd.stop();

    assert.deepEqual(await mountsOfDevice(dev.path), [root]);
    assert.deepEqual(
      (await mountsUnder(root)).map((m) => m.mountPoint),
      [root],
      'no snapshot mount may be left on the volume',
    );
  });

  test('treeChecksum sees one byte, mode or xattr change, and not a cp -a copy', async (t) => {
    const defer = cleanupStack(t);
    const temp = await makeTempDir('ctrvol-sum');
    defer(() => temp.cleanup());
    const dir = path.join(temp.path, 'store');
    const seeded = await seedStandInStore(dir, { bytes: 2_000_000, fileCount: 120 });
    assert.ok(seeded.specials.length > 0);
    const original = await treeManifest(dir);
    const sum = await treeChecksum(dir);
    assert.equal(await treeChecksum(dir), sum, 'the checksum must be repeatable');

    const copy = path.join(temp.path, 'copy');
    await execa('cp', ['-a', `${dir}/.`, copy], { stdin: 'ignore' });
    const copied = await treeManifest(copy);
    assert.deepEqual(diffManifests(original, copied), []);
    assert.equal(await treeChecksum(copy), sum);

    const target = path.join(dir, 'io.containerd.snapshotter.v1.overlayfs/snapshots/1/fs/etc');
    const file = path.join(target, 'os-release');
    const { mtime } = await stat(file);
    const restoreTime = () => execa('touch', ['-h', '-d', mtime.toISOString(), file]);

    // One byte, same size, same mtime: only the content hash can notice.
    const text = await readFile(file, 'utf8');
    await writeFile(file, text.replace('I', 'J'));
    await restoreTime();
    assert.notEqual(await treeChecksum(dir), sum, 'one changed byte');
    await writeFile(file, text);
    await restoreTime();
    assert.equal(await treeChecksum(dir), sum, 'restoring the byte restores the checksum');

    await chmod(file, 0o600);
    assert.notEqual(await treeChecksum(dir), sum, 'one changed mode');
    await chmod(file, 0o644);
    assert.equal(await treeChecksum(dir), sum);

    await execa('setfattr', ['-n', 'user.ctrvol', '-v', 'changed', file]);
    assert.notEqual(await treeChecksum(dir), sum, 'one changed xattr');
    await execa('setfattr', ['-n', 'user.ctrvol', '-v', 'kept', file]);
    assert.equal(await treeChecksum(dir), sum);

    const opaque = path.join(dir, 'io.containerd.snapshotter.v1.overlayfs/snapshots/2/fs/opaque');
    await execa('setfattr', ['-x', 'trusted.overlay.opaque', opaque]);
    assert.notEqual(await treeChecksum(dir), sum, 'a lost trusted xattr');
  });
});
