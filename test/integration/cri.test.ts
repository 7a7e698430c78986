import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, rmdir, stat, writeFile } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { execa } from 'execa';
import {
  K8S_NAMESPACE,
  listContainerdImages,
  listPinnedImageNames,
  PINNED_LABEL,
} from '../../agent/containerd/images.js';
import { parseContainerdVersion, findSandboxImage } from '../../agent/containerd/sandbox-image.js';
import { createCriClient, GrpcCallError, type CriClient } from '../../agent/cri/client.js';
import { EnvironmentError } from '../../agent/errors.js';
import {
  importImage,
  listImages as ctrListImages,
  SANDBOX_IMAGE,
  startContainerd,
  type Containerd,
} from '../helpers/containerd.js';
import { removePod, runPodWithContainer } from '../helpers/cri-pods.js';
import { buildImageArchive, type BuiltImage } from '../helpers/oci-image.js';
import { makeTempDir, type TempDir } from '../helpers/temp.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const APP = 'registry.example/app:1.0';
const APP_ALIAS = 'registry.example/app:stable';
const REMOVABLE = 'registry.example/removable:1';

/** The runc failure every CRI sandbox meets on the development host (see PITFALLS.md). */
const RUNC_PIPE_ERROR = "can't get final child's PID from pipe";

/** Whether a directory exists; /run/containerd does not on this host until a shim makes it. */
function exists(dir: string): boolean {
  return existsSync(dir);
}

/**
 * A shim of the test's containerd creates /run/containerd/{s,runc/k8s.io} whatever the
 * containerd's own state dir is (the runc shim's default root). When the test made them, it
 * removes them again, but only while empty: rmdir never takes anything else's files with it.
 */
async function removeEmptyDirs(dirs: string[]): Promise<void> {
  for (const dir of dirs) {
    await rmdir(dir).catch(() => undefined);
  }
}

async function waitForCriImages(client: CriClient, names: string[]): Promise<void> {
  // The CRI plugin learns of images imported with ctr from containerd's event stream.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const tags = (await client.listImages()).flatMap((image) => image.repoTags);
    if (names.every((name) => tags.includes(name))) return;
    if (Date.now() > deadline) throw new Error(`CRI never listed ${names.join(', ')}: ${tags}`);
    await sleep(50);
  }
}

describe('the CRI client against a real containerd', () => {
  let temp: TempDir;
  let ctrd: Containerd;
  let client: CriClient;
  let pause: BuiltImage;
  let app: BuiltImage;
  const runContainerdExisted = exists('/run/containerd');

  before(async () => {
    temp = await makeTempDir('ctrvol-cri');
    ctrd = await startContainerd({
      root: path.join(temp.path, 'root'),
      state: path.join(temp.path, 'state'),
      dir: path.join(temp.path, 'c'),
    });
    pause = await buildImageArchive({
      name: SANDBOX_IMAGE,
      out: path.join(temp.path, 'pause.tar'),
      fileCount: 2,
    });
    app = await buildImageArchive({
      name: APP,
      out: path.join(temp.path, 'app.tar'),
      fileCount: 20,
      layerCount: 2,
    });
    const removable = await buildImageArchive({
      name: REMOVABLE,
      out: path.join(temp.path, 'removable.tar'),
      fileCount: 5,
    });
    await importImage(ctrd, pause.archivePath, { pinned: true });
    await importImage(ctrd, app.archivePath);
    await importImage(ctrd, removable.archivePath);
    await ctrd.ctr(['-n', K8S_NAMESPACE, 'images', 'tag', APP, APP_ALIAS]);
    client = await createCriClient({ socket: ctrd.socket });
    await waitForCriImages(client, [SANDBOX_IMAGE, APP, APP_ALIAS, REMOVABLE]);
  });

  after(async () => {
    client?.close();
    await ctrd?.stop();
    await temp?.cleanup();
    if (!runContainerdExisted) {
      await removeEmptyDirs([
        '/run/containerd/runc/k8s.io',
        '/run/containerd/runc',
        '/run/containerd/s',
        '/run/containerd',
      ]);
    }
  });

  test('answers Version as containerd speaking CRI v1', async () => {
    const version = await client.version();

    assert.equal(version.runtimeName, 'containerd');
    assert.equal(version.runtimeApiVersion, 'v1');
    assert.ok(parseContainerdVersion(version.runtimeVersion), version.runtimeVersion);
  });

  test('gives its effective config, sandbox image and root, in Status verbose', async () => {
    const status = await client.status({ verbose: true });
    const found = await findSandboxImage({ client, configPath: ctrd.configPath });

    assert.ok(status.conditions.some((c) => c.type === 'RuntimeReady' && c.status));
    assert.ok('config' in status.info, Object.keys(status.info).join(', '));
    assert.equal(found.source, 'cri-status');
    assert.equal(found.name, SANDBOX_IMAGE);
    assert.equal(found.root, ctrd.root);
    assert.equal(found.rootSource, 'cri-status');
  });

  test('reads the same sandbox image and root from its config file', async () => {
    const found = await findSandboxImage({ configPath: ctrd.configPath });

    assert.equal(found.source, 'config');
    assert.equal(found.name, SANDBOX_IMAGE);
    assert.equal(found.root, ctrd.root);
  });

  test('lists images with their compressed size and finds each by any name', async () => {
    const images = await client.listImages();
    const byId = new Map(images.map((image) => [image.id, image]));
    const appImage = byId.get(app.configDigest);
    const short = await client.imageStatus('registry.example/app:stable');
    const byDigestId = await client.imageStatus(app.configDigest);
    const missing = await client.imageStatus('registry.example/missing:1');

    assert.ok(appImage, `no ${app.configDigest} in ${[...byId.keys()].join(', ')}`);
    assert.deepEqual(appImage.repoTags.sort(), [APP, APP_ALIAS]);
    // containerd counts the image's content (manifest, config, compressed layers), not the
    // unpacked snapshots.
    const layerBytes = app.layers.reduce((sum, layer) => sum + layer.size, 0);
    assert.equal(typeof appImage.size, 'number');
    assert.ok(appImage.size > layerBytes && appImage.size < layerBytes + 4096, `${appImage.size}`);
    assert.equal(byId.get(pause.configDigest)?.repoTags[0], SANDBOX_IMAGE);
    assert.equal(short.image?.id, app.configDigest);
    assert.equal(byDigestId.image?.id, app.configDigest);
    assert.equal(missing.image, undefined);
  });

  test('reports the image filesystem as the snapshotter directory under its root', async () => {
    const info = await client.imageFsInfo();
    const usage = info.imageFilesystems[0];

    assert.equal(info.imageFilesystems.length, 1);
    assert.equal(usage?.mountpoint, path.join(ctrd.root, 'io.containerd.snapshotter.v1.overlayfs'));
    // 1.6 reports 0 until its first stats pass, ten seconds after start; a number either way.
    assert.equal(typeof usage?.usedBytes, 'number');
    assert.equal(typeof usage?.inodesUsed, 'number');
  });

  test('reads the pinned label through containerd’s own API as ctr shows it', async () => {
    const version = parseContainerdVersion((await client.version()).runtimeVersion);
    const native = await listContainerdImages(client);
    const pinned = await listPinnedImageNames(client);
    const byCtr = await ctrListImages(ctrd);
    const cri = await client.listImages();

    assert.deepEqual(
      native.map((image) => [image.name, image.pinned]).sort(),
      byCtr.map((image) => [image.name, image.pinned]).sort(),
    );
    assert.deepEqual([...pinned], [SANDBOX_IMAGE]);
    assert.equal(
      native.find((image) => image.name === SANDBOX_IMAGE)?.labels[PINNED_LABEL],
      'pinned',
    );
    if (version !== undefined && version.major === 1 && version.minor === 6) {
      // The reason for reading the label natively: 1.6.20 never reports pinned through the CRI.
      assert.ok(cri.every((image) => !image.pinned));
    }
  });

  test('removes every name of an image at once, and again without error', async () => {
    await client.removeImage(REMOVABLE);
    await client.removeImage(REMOVABLE);

    const names = (await listContainerdImages(client)).map((image) => image.name);
    assert.ok(!names.includes(REMOVABLE), names.join(', '));
    assert.equal((await client.imageStatus(REMOVABLE)).image, undefined);
    // Its ID record went too, so containerd's GC could free the content.
    assert.equal(names.filter((name) => name.startsWith('sha256:')).length, 2);
  });

  test('takes RunPodSandbox with host networking through containerd as far as runc', async (t) => {
    const started = performance.now();
    try {
      const { remove } = await runPodWithContainer(client, { image: APP, command: ['/pause'] });
      // Inside the qemu guest the pod runs; taking it down again is the rest of the check.
      await remove();
      assert.deepEqual(await client.listPodSandboxes(), []);
    } catch (error) {
      if (!(error instanceof GrpcCallError) || !error.details.includes(RUNC_PIPE_ERROR))
        throw error;
      t.diagnostic(`RunPodSandbox: ${error.details}`);
      assert.equal(error.method, 'runtime.v1.RuntimeService/RunPodSandbox');
      assert.match(error.details, /failed to create containerd task: .*runc create failed/);
      // containerd cleans up after a sandbox that did not start; nothing must be left over.
      const leftovers = await client.listPodSandboxes();
      for (const pod of leftovers) await removePod(client, pod.id);
      assert.deepEqual(leftovers, []);
    }
    assert.ok(performance.now() - started < 30_000);
  });

  test('runs in a one-file bundle with no node_modules beside it', async (t) => {
    const dir = await makeTempDir('ctrvol-cri-bundle');
    t.after(dir.cleanup);
    const outfile = path.join(dir.path, 'cri-probe.cjs');
    // The options of scripts/build.mjs, so that the proto text and the gRPC stack are embedded
    // the same way as in dist/ctrvol.cjs.
    await build({
      stdin: {
        contents: `
          import { createCriClient } from './agent/cri/client.js';
          import { listPinnedImageNames } from './agent/containerd/images.js';
          import { findSandboxImage } from './agent/containerd/sandbox-image.js';
          async function main(): Promise<void> {
            const client = await createCriClient({ socket: process.argv[2] });
            try {
              const version = await client.version();
              const pinned = [...(await listPinnedImageNames(client))];
              const sandbox = await findSandboxImage({ client });
              const images = await client.listImages();
              const sizes = images.map((image) => typeof image.size);
              process.stdout.write(JSON.stringify({ version, pinned, sandbox, sizes }));
            } finally {
              client.close();
            }
          }
          main().catch((error) => {
            process.stderr.write(error.name + ': ' + error.message + '\\n');
            process.exitCode = error.exitCode ?? 1;
          });
        `,
        resolveDir: repoRoot,
        sourcefile: 'cri-probe.ts',
        loader: 'ts',
      },
      outfile,
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'cjs',
      minify: true,
      keepNames: true,
      legalComments: 'none',
      logLevel: 'warning',
    });
    assert.deepEqual(await readdir(dir.path), ['cri-probe.cjs']);
    assert.equal(exists(path.join(path.dirname(dir.path), 'node_modules')), false);
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };

    const run = await execa('node', [outfile, ctrd.socket], {
      cwd: dir.path,
      env,
      extendEnv: false,
      reject: false,
    });
    const absent = await execa('node', [outfile, path.join(dir.path, 'absent.sock')], {
      cwd: dir.path,
      env,
      extendEnv: false,
      reject: false,
    });

    assert.equal(run.exitCode, 0, run.stderr);
    const probe = JSON.parse(run.stdout) as {
      version: { runtimeName: string };
      pinned: string[];
      sandbox: { name: string; source: string };
      sizes: string[];
    };
    assert.equal(probe.version.runtimeName, 'containerd');
    assert.deepEqual(probe.pinned, [SANDBOX_IMAGE]);
    assert.deepEqual(probe.sandbox.name, SANDBOX_IMAGE);
    assert.ok(probe.sizes.length > 0 && probe.sizes.every((type) => type === 'number'));
    assert.equal(absent.exitCode, 3);
    assert.match(absent.stderr, /^EnvironmentError: no containerd socket at .*absent\.sock$/m);
    t.diagnostic(`bundle ${(await stat(outfile)).size} bytes`);
  });
});

describe('the CRI client when containerd is not there', () => {
  test('fails at once with exit code 3 when the socket does not exist', async (t) => {
    const temp = await makeTempDir('ctrvol-cri-absent');
    t.after(temp.cleanup);
    const socket = path.join(temp.path, 'containerd.sock');

    const started = performance.now();
    await assert.rejects(createCriClient({ socket }), (error: unknown) => {
      assert.ok(error instanceof EnvironmentError);
      assert.equal(error.exitCode, 3);
      assert.equal(error.message, `no containerd socket at ${socket}`);
      return true;
    });
    assert.ok(performance.now() - started < 1_000);
  });

  test('refuses a path that is not a socket', async (t) => {
    const temp = await makeTempDir('ctrvol-cri-absent');
    t.after(temp.cleanup);
    const file = path.join(temp.path, 'containerd.sock');
    await writeFile(file, '');

    await assert.rejects(createCriClient({ socket: file }), /is not a unix socket/);
  });

  test('fails fast with exit code 3 on the stale socket a killed containerd leaves', async (t) => {
    const temp = await makeTempDir('ctrvol-cri-stale');
    t.after(temp.cleanup);
    const socket = path.join(temp.path, 'containerd.sock');
    // A process that dies by SIGKILL cannot unlink its socket, as a crashed containerd cannot.
    const child = execa(
      'node',
      ['-e', `require('net').createServer().listen(${JSON.stringify(socket)})`],
      { reject: false },
    );
    while (!exists(socket)) await sleep(20);
    child.kill('SIGKILL');
    await child;
    const client = await createCriClient({ socket });
    t.after(() => client.close());

    const started = performance.now();
    await assert.rejects(client.version(), (error: unknown) => {
      assert.ok(error instanceof EnvironmentError);
      assert.equal(error.exitCode, 3);
      assert.match(error.message, new RegExp(`^containerd is not answering on ${socket}`));
      return true;
    });
    assert.ok(performance.now() - started < 2_000);
  });

  test('gives up at the deadline on a listener that accepts and never answers', async (t) => {
    const temp = await makeTempDir('ctrvol-cri-hung');
    t.after(temp.cleanup);
    const socket = path.join(temp.path, 'containerd.sock');
    const accepted: Socket[] = [];
    const server = createServer((connection) => {
      accepted.push(connection);
    });
    await new Promise<void>((resolve) => server.listen(socket, resolve));
    t.after(async () => {
      for (const connection of accepted) connection.destroy();
      await new Promise((resolve) => server.close(resolve));
    });
    const client = await createCriClient({ socket, timeoutMs: 500 });
    t.after(() => client.close());

    const started = performance.now();
    await assert.rejects(client.listImages(), (error: unknown) => {
      assert.ok(error instanceof EnvironmentError);
      assert.equal(error.exitCode, 3);
      assert.equal(
        error.message,
        `containerd did not answer runtime.v1.ImageService/ListImages on ${socket} within 500 ms`,
      );
      return true;
    });
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 450 && elapsed < 3_000, `${elapsed} ms`);
    assert.ok(accepted.length > 0, 'the client did connect');
  });
});
