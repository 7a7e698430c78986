import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { status as grpcStatus } from '@grpc/grpc-js';
import {
  listContainerdImages,
  listPinnedImageNames,
  PINNED_LABEL,
} from '../../agent/containerd/images.js';
import { createCriClient, GrpcCallError, type CriClient } from '../../agent/cri/client.js';
import { EnvironmentError } from '../../agent/errors.js';
import {
  startFakeRuntime,
  type FakeRuntime,
  type FakeRuntimeOptions,
} from '../helpers/fake-runtime.js';

const PAUSE_ID = `sha256:${'1'.repeat(64)}`;
const APP_ID = `sha256:${'2'.repeat(64)}`;
const OLD_ID = `sha256:${'3'.repeat(64)}`;
const APP_DIGEST = `sha256:${'a'.repeat(64)}`;

const images: NonNullable<FakeRuntimeOptions['images']> = [
  {
    id: PAUSE_ID,
    repoTags: ['localhost/kubernetes/pause:latest'],
    size: 300_000,
    pinnedLabel: true,
  },
  {
    id: APP_ID,
    repoTags: ['registry.example/app:1.0', 'registry.example/app:stable'],
    repoDigests: [`registry.example/app@${APP_DIGEST}`],
    // Above 2^32, to see that uint64 survives as a plain number.
    size: 5_000_000_000,
  },
  { id: OLD_ID, repoTags: ['docker.io/library/busybox:1.36'], size: 2_100_000 },
];

async function setup(
  t: TestContext,
  options: FakeRuntimeOptions = {},
): Promise<{ runtime: FakeRuntime; client: CriClient }> {
  const runtime = await startFakeRuntime({
    images: images.map((image) => ({ ...image })),
    sandboxes: [{ id: 'pod1', name: 'web', namespace: 'default', labels: { app: 'web' } }],
    containers: [
      { id: 'c1', podSandboxId: 'pod1', image: APP_ID, state: 'CONTAINER_RUNNING' },
      { id: 'c2', podSandboxId: 'pod1', image: OLD_ID, state: 'CONTAINER_EXITED' },
    ],
    ...options,
  });
  t.after(() => runtime.close());
  const client = await createCriClient({ socket: runtime.socket });
  t.after(() => client.close());
  return { runtime, client };
}

describe('the CRI client against the fake runtime', () => {
  test('reads the version and the runtime conditions', async (t) => {
    const { client } = await setup(t);

    const version = await client.version();
    const status = await client.status();

    assert.equal(version.runtimeName, 'containerd');
    assert.equal(version.runtimeApiVersion, 'v1');
    assert.deepEqual(
      status.conditions.map((c) => [c.type, c.status]),
      [
        ['RuntimeReady', true],
        ['NetworkReady', true],
      ],
    );
    assert.deepEqual(status.info, {}, 'no info without verbose');
  });

  test('lists images with sizes as plain numbers, even above 4 GiB', async (t) => {
    const { client } = await setup(t);

    const listed = await client.listImages();

    assert.deepEqual(
      listed.map((image) => [image.id, image.size, typeof image.size]),
      [
        [PAUSE_ID, 300_000, 'number'],
        [APP_ID, 5_000_000_000, 'number'],
        [OLD_ID, 2_100_000, 'number'],
      ],
    );
    assert.deepEqual(listed[1]?.repoTags, [
      'registry.example/app:1.0',
      'registry.example/app:stable',
    ]);
  });

  test('finds an image by short name, digest or ID, and an unknown one as absent', async (t) => {
    const { client } = await setup(t);

    const byName = await client.imageStatus('busybox:1.36');
    const byDigest = await client.imageStatus(`registry.example/app@${APP_DIGEST}`);
    const byId = await client.imageStatus(PAUSE_ID);
    const unknown = await client.imageStatus('registry.example/nope:1');

    assert.equal(byName.image?.id, OLD_ID);
    assert.equal(byDigest.image?.id, APP_ID);
    assert.equal(byId.image?.id, PAUSE_ID);
    assert.equal(unknown.image, undefined);
  });

  test('sends container filters, including the wrapped state, to the runtime', async (t) => {
    const { client } = await setup(t);

    const running = await client.listContainers({ state: 'CONTAINER_RUNNING' });
    const inPod = await client.listContainers({ podSandboxId: 'pod1' });
    const none = await client.listContainers({ podSandboxId: 'other' });
    const pods = await client.listPodSandboxes({ labelSelector: { app: 'web' } });

    assert.deepEqual(
      running.map((c) => [c.id, c.image, c.state]),
      [['c1', APP_ID, 'CONTAINER_RUNNING']],
    );
    assert.deepEqual(
      inPod.map((c) => c.id),
      ['c1', 'c2'],
    );
    assert.deepEqual(none, []);
    assert.deepEqual(
      pods.map((p) => [p.id, p.name, p.namespace, p.state]),
      [['pod1', 'web', 'default', 'SANDBOX_READY']],
    );
    assert.ok(running[0]?.createdAt instanceof Date);
  });

  test('removes every name of an image at once, and takes a second removal calmly', async (t) => {
    const { client, runtime } = await setup(t);

    await client.removeImage('registry.example/app:stable');
    await client.removeImage('registry.example/app:stable');

    assert.deepEqual(
      (await client.listImages()).map((image) => image.id),
      [PAUSE_ID, OLD_ID],
    );
    assert.deepEqual(runtime.removed, ['registry.example/app:stable']);
    runtime.assertNoUnexpectedCalls();
  });

  test('turns an error answer into a GrpcCallError with its gRPC code', async (t) => {
    const { client } = await setup(t, {
      removeImageError: () => ({ code: grpcStatus.FAILED_PRECONDITION, details: 'image in use' }),
    });

    await assert.rejects(client.removeImage('busybox:1.36'), (error: unknown) => {
      assert.ok(error instanceof GrpcCallError);
      assert.equal(error.exitCode, 1);
      assert.equal(error.codeName, 'FAILED_PRECONDITION');
      assert.equal(error.method, 'runtime.v1.ImageService/RemoveImage');
      assert.match(
        error.message,
        /RemoveImage on .*cri\.sock failed \(FAILED_PRECONDITION\): image in use/,
      );
      return true;
    });
  });

  test('reports the image filesystem in bytes and inodes', async (t) => {
    const { client } = await setup(t, {
      imageFs: {
        mountpoint: '/mnt/ctrd/io.containerd.snapshotter.v1.overlayfs',
        usedBytes: 7e9,
        inodesUsed: 42,
      },
    });

    const info = await client.imageFsInfo();

    assert.equal(info.imageFilesystems.length, 1);
    assert.equal(
      info.imageFilesystems[0]?.mountpoint,
      '/mnt/ctrd/io.containerd.snapshotter.v1.overlayfs',
    );
    assert.equal(info.imageFilesystems[0]?.usedBytes, 7e9);
    assert.equal(info.imageFilesystems[0]?.inodesUsed, 42);
    assert.deepEqual(info.containerFilesystems, []);
  });

  test('makes any call that would start or stop something fail loudly', async (t) => {
    const { client, runtime } = await setup(t);

    await assert.rejects(
      client.runPodSandbox({ metadata: { name: 'x', uid: 'u', namespace: 'n' } }),
      /fake runtime: unexpected call to RunPodSandbox/,
    );
    await assert.rejects(client.stopContainer('c1'), /unexpected call to StopContainer/);

    assert.deepEqual(runtime.unexpected, [
      'RunPodSandbox: the fake runtime does not run pods',
      'StopContainer: the fake runtime does not run pods',
    ]);
    assert.throws(() => runtime.assertNoUnexpectedCalls(), /RunPodSandbox/);
  });

  test('reads pinned labels through containerd’s own image service in k8s.io', async (t) => {
    const { client, runtime } = await setup(t);

    const records = await listContainerdImages(client);
    const pinned = await listPinnedImageNames(client);
    const filtered = await listContainerdImages(client, {
      filters: [`labels."${PINNED_LABEL}"==pinned`],
    });
    const otherNamespace = await listContainerdImages(client, { namespace: 'default' });

    // One record per tag, digest name and ID, as containerd keeps them.
    assert.equal(records.length, 8);
    assert.deepEqual([...pinned], ['localhost/kubernetes/pause:latest']);
    assert.deepEqual(
      filtered.map((record) => record.name),
      ['localhost/kubernetes/pause:latest'],
    );
    assert.deepEqual(otherNamespace, []);
    assert.deepEqual(
      runtime.calls.filter((call) => call.method === 'Images/List').map((call) => call.namespace),
      ['k8s.io', 'k8s.io', 'k8s.io', 'default'],
    );
  });

  test('refuses a containerd filter the fake does not understand', async (t) => {
    const { client, runtime } = await setup(t);

    await assert.rejects(
      listContainerdImages(client, { filters: ['labels~=pinned'] }),
      /filter labels~=pinned is not supported/,
    );
    assert.equal(runtime.unexpected.length, 1);
  });

  test('fails with exit code 3, naming the socket, once the runtime is gone', async (t) => {
    const { client, runtime } = await setup(t);
    await runtime.close();

    const started = performance.now();
    await assert.rejects(client.version(), (error: unknown) => {
      assert.ok(error instanceof EnvironmentError);
      assert.equal(error.exitCode, 3);
      assert.match(error.message, new RegExp(`not answering on ${runtime.socket}`));
      return true;
    });
    assert.ok(performance.now() - started < 2_000);
  });
});
