import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { execa } from 'execa';
import { listImages, SANDBOX_IMAGE } from '../helpers/containerd.js';
import { startFakeRuntime } from '../helpers/fake-runtime.js';
import { makeTempDir } from '../helpers/temp.js';
import { addImages, hour, jsonLines, makeNode, usedPercent, writeLastUsed } from './node-rig.js';
import { ctrvolBinary } from './rig.js';

describe('ctrvol verify', () => {
  test('passes on a store that has the pinned sandbox image, and changes nothing', async (t) => {
    const node = await makeNode(t);
    const before = await listImages(node.containerd);

    const first = await node.ctrvol('verify');
    const second = await node.ctrvol('verify');

    assert.equal(first.exitCode, 0, first.stderr);
    assert.equal(first.stdout, `sandbox image ${SANDBOX_IMAGE} is present and pinned`);
    assert.equal(second.stdout, first.stdout);
    assert.deepEqual(await listImages(node.containerd), before);
  });

  test('heals a store whose sandbox image was removed, from the archive, and pins it', async (t) => {
    const node = await makeNode(t);
    await node.containerd.ctr(['-n', 'k8s.io', 'images', 'rm', '--sync', SANDBOX_IMAGE]);
    assert.ok(!(await node.names()).includes(SANDBOX_IMAGE));

    const result = await node.ctrvol('verify');
    const again = await node.ctrvol('verify');

    assert.equal(result.exitCode, 0, result.stderr);
    assert.match(result.stdout, /was missing; imported it from .*pause\.tar and pinned it/);
    const pause = (await listImages(node.containerd)).find((image) => image.name === SANDBOX_IMAGE);
    assert.equal(pause?.status, 'complete');
    assert.equal(pause?.labels['io.cri-containerd.pinned'], 'pinned');
    assert.equal(again.stdout, `sandbox image ${SANDBOX_IMAGE} is present and pinned`);
  });

  test('fails clearly, exit code 1, when the image is missing and there is no archive', async (t) => {
    const node = await makeNode(t, { archive: false });
    await node.containerd.ctr(['-n', 'k8s.io', 'images', 'rm', '--sync', SANDBOX_IMAGE]);

    const result = await node.ctrvol('verify');

    assert.equal(result.exitCode, 1);
    const last = result.stderr.trim().split('\n').at(-1) ?? '';
    assert.match(
      last,
      /^ctrvol: sandbox image localhost\/kubernetes\/pause:latest is missing from containerd \(namespace k8s\.io\) and there is no archive at \/nonexistent\/pause\.tar: no pod can start on this node \(import it with "ctr -n k8s\.io images import FILE"/,
    );
  });

  test('says containerd is not answering, with exit code 3, once its wait runs out', async (t) => {
    const temp = await makeTempDir('ctrvol-verify');
    t.after(temp.cleanup);
    const config = path.join(temp.path, 'config.yaml');
    await writeFile(
      config,
      `volume: {device: /dev/ctrvol-test-absent}\ncontainerd: {socket: ${temp.path}/gone.sock}\n`,
    );

    const result = await execa(
      'node',
      [ctrvolBinary, 'prune', '--config', config, '--root', temp.path],
      { reject: false },
    );

    assert.equal(result.exitCode, 3);
    assert.match(result.stderr, /gone\.sock/);
  });
});

describe('ctrvol prune against a real containerd', () => {
  test('removes least recently used images until statfs shows the target, and no more', async (t) => {
    const node = await makeNode(t, { pruneYaml: 'prune:\n  minAgeSeconds: 0\n' });
    const fillers = await addImages(node, 10, 10 << 20);
    await writeLastUsed(node, fillers);
    const start = await usedPercent(node.rig.mountPoint);
    const target = start - 15;

    const result = await node.ctrvol('prune', '--target-percent', String(target));

    assert.equal(result.exitCode, 0, result.stderr);
    const removals = jsonLines(result.stderr).filter((line) =>
      String(line.msg).startsWith('removed '),
    );
    assert.ok(removals.length > 0);
    assert.deepEqual(
      removals.map((line) => line.image),
      fillers.slice(0, removals.length),
      'least recently used first',
    );
    const percents = removals.map((line) => Number(line.usedPercent));
    assert.ok((percents.at(-1) ?? 100) <= target, `ended at ${percents.at(-1)}%`);
    assert.ok(
      percents.slice(0, -1).every((percent) => percent > target),
      'stopped at the target',
    );
    assert.match(
      result.stdout,
      new RegExp(`removed ${removals.length} image\\(s\\), freed [\\d.]+ MiB; usage `),
    );
    const left = await node.names();
    assert.ok(left.includes(SANDBOX_IMAGE));
    assert.deepEqual(
      left.filter((name) => name.includes('filler')),
      fillers.slice(removals.length),
    );
  });

  test('never removes the sandbox image, a labelled pinned image or a young one, and says so', async (t) => {
    const node = await makeNode(t, {
      pruneYaml: 'prune:\n  minAgeSeconds: 0\n  keep: ["registry.example/filler-03:*"]\n',
    });
    const fillers = await addImages(node, 4, 4 << 20);
    await writeLastUsed(node, fillers.slice(0, 2));
    // filler-02 is pinned the way the AMI pins the pause image; containerd 1.6 reports no pin
    // through CRI, so only the label can protect it.
    await node.containerd.ctr([
      '-n',
      'k8s.io',
      'images',
      'label',
      fillers[2] as string,
      'io.cri-containerd.pinned=pinned',
    ]);

    const result = await node.ctrvol('prune', '--target-percent', '1');

    assert.equal(result.exitCode, 1);
    const last = result.stderr.trim().split('\n').at(-1) ?? '';
    assert.match(last, /the target of 1% cannot be reached: the rest is protected: /);
    assert.match(last, /localhost\/kubernetes\/pause:latest \([^)]*the sandbox image/);
    assert.match(last, /registry\.example\/filler-02:1 \(pinned\)/);
    assert.match(last, /registry\.example\/filler-03:1 \(matches keep pattern/);
    const left = await node.names();
    for (const name of [SANDBOX_IMAGE, fillers[2], fillers[3]]) {
      assert.ok(left.includes(name as string), `${name} was kept`);
    }

    assert.ok(!left.includes(fillers[0] as string) && !left.includes(fillers[1] as string));
  });

  test('treats images it has never seen as young and keeps them', async (t) => {
    const node = await makeNode(t);
    const fillers = await addImages(node, 2, 1 << 20);

    const result = await node.ctrvol('prune', '--target-percent', '1');

    assert.equal(result.exitCode, 1);
    assert.match(result.stderr, /filler-00:1 \(younger than 300 s\)/);
    assert.deepEqual(
      (await node.names()).filter((name) => name.includes('filler')),
      fillers,
    );
  });

  test('prints the plan on --dry-run and changes nothing', async (t) => {
    const node = await makeNode(t, { pruneYaml: 'prune:\n  minAgeSeconds: 0\n' });
    const fillers = await addImages(node, 3, 1 << 20);
    await writeLastUsed(node, fillers);
    const usageFile = path.join(node.rig.root, 'var/lib/ctrvol/images.json');
    const usage = await readFile(usageFile, 'utf8');
    const before = await node.names();

    const result = await node.ctrvol('prune', '--dry-run', '--target-percent', '1');

    assert.equal(result.exitCode, 0, result.stderr);
    assert.match(
      result.stdout,
      /Would remove, in this order, until the target is met:\n {2}1\. registry\.example\/filler-00:1/,
    );
    assert.match(
      result.stdout,
      /Kept:\n(.*\n)* {2}- localhost\/kubernetes\/pause:latest .*the sandbox image/,
    );
    assert.deepEqual(await node.names(), before);
    assert.equal(await readFile(usageFile, 'utf8'), usage);
  });
});

describe('ctrvol prune and the volume', () => {
  test('refuses, removing nothing, when the volume is not mounted', async (t) => {
    const node = await makeNode(t, { pruneYaml: 'prune:\n  minAgeSeconds: 0\n' });
    await addImages(node, 2, 1 << 20);
    const before = await node.names();
    // containerd keeps running on the store; only the volume under it is gone from view.
    await execa('umount', ['--lazy', node.rig.mountPoint]);

    const result = await node.ctrvol('prune', '--target-percent', '1');
    await execa('mount', [node.rig.device.path, node.rig.mountPoint]);

    assert.equal(result.exitCode, 3, result.stderr);
    assert.match(result.stderr, /the volume is not mounted at .*; nothing was removed/);
    assert.deepEqual(await node.names(), before);
  });
});

describe('ctrvol prune and containers', () => {
  test('keeps images of running and exited containers, listing containers again before each removal', async (t) => {
    const digest = (n: number) => `sha256:${String(n).repeat(64)}`;
    const runtime = await startFakeRuntime({
      images: [
        { id: digest(1), repoTags: ['registry.example/running:1'], size: 100 },
        { id: digest(2), repoTags: ['registry.example/exited:1'], size: 100 },
        { id: digest(3), repoTags: ['registry.example/unused:1'], size: 100 },
        { id: digest(4), repoTags: ['registry.example/started-late:1'], size: 100 },
        { id: digest(5), repoTags: [SANDBOX_IMAGE], size: 1 },
      ],
      containers: [
        { id: 'c1', image: digest(1), state: 'CONTAINER_RUNNING' },
        {
          id: 'c2',
          image: 'registry.example/exited:1',
          imageRef: digest(2),
          state: 'CONTAINER_EXITED',
        },
      ],
      statusInfo: {
        config: JSON.stringify({ sandboxImage: SANDBOX_IMAGE, containerdRootDir: '/x' }),
      },
      // The kubelet starts a container from started-late after prune made its plan (its first
      // ListContainers) and before it removes that image.
      beforeCall: (method, count) => {
        if (method === 'ListContainers' && count === 2) {
          runtime.containers.push({
            id: 'c3',
            image: 'registry.example/started-late:1',
            state: 'CONTAINER_CREATED',
          });
        }
      },
    });
    t.after(() => runtime.close());
    const temp = await makeTempDir('ctrvol-prune');
    t.after(temp.cleanup);
    // prune refuses to work on anything but a mounted volume; a small tmpfs stands in.
    const volume = path.join(temp.path, 'volume');
    await mkdir(volume);
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'ctrvol-test', volume]);
    // temp.cleanup, added first and so run first, already unmounts it; this is for a failure before.
    t.after(() => execa('umount', [volume], { reject: false }).then(() => undefined));
    // Half full, and nothing the fake removes frees any of it: prune goes through everything.
    await writeFile(path.join(volume, 'layers'), Buffer.alloc(8 << 20, 1));
    const config = path.join(temp.path, 'config.yaml');
    await writeFile(
      config,
      [
        'volume:',
        '  device: /dev/ctrvol-test-absent',
        `  mountPoint: ${volume}`,
        'containerd:',
        `  socket: ${runtime.socket}`,
        'prune:',
        '  minAgeSeconds: 0',
        '',
      ].join('\n'),
    );
    // Every image is old enough; the one a container will start using is the least recent.
    const old = Date.now() - 10 * hour;
    await mkdir(path.join(temp.path, 'var/lib/ctrvol'), { recursive: true });
    await writeFile(
      path.join(temp.path, 'var/lib/ctrvol/images.json'),
      JSON.stringify({
        version: 1,
        images: Object.fromEntries(
          [1, 2, 3, 4, 5].map((n) => [
            digest(n),
            { firstSeen: old, lastUsed: n === 4 ? old - hour : old },
          ]),
        ),
      }),
    );
    const result = await execa(
      'node',
      [ctrvolBinary, 'prune', '--config', config, '--root', temp.path, '--target-percent', '1'],
      { reject: false },
    );

    // The target cannot be met (nothing real is freed), so everything unprotected goes.
    assert.equal(result.exitCode, 1, result.stderr);
    assert.deepEqual(
      runtime.removed,
      [digest(3)],
      JSON.stringify(runtime.calls.map((c) => c.method)) + result.stderr,
    );
    assert.match(result.stderr, /in use by a container/);
    runtime.assertNoUnexpectedCalls();
  });
});
