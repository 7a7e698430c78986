/**
 * The in-guest pod CLI, bundled by esbuild into one .cjs that the guest's Node.js runs. It talks
 * CRI to containerd as the kubelet would, through the project's own client and pod helpers:
 *
 *   pod.cjs run --name NAME --image IMAGE [--remove]
 *       lists the images as the CRI shows them (the kubelet's view: tags and `pinned`), then
 *       runs a host-network pod sandbox and one container in it; prints a JSON report and exits
 *       0 when the container is running, 1 when a step failed (the report says which, with the
 *       runtime's error text). One process for both: Node.js takes seconds to start on an
 *       emulated CPU.
 *   pod.cjs run ... --command CMD [--command ARG ...] --exit
 *       the same with the container's command replaced, waiting (60 s at most) for the container
 *       to exit: the report is ok when it exited and the sandbox is still ready (a pod whose
 *       container ran and exited, kept, as the kubelet keeps it until the pod is deleted)
 *   pod.cjs images
 *       prints the images as the CRI lists them (the kubelet's view: tags and `pinned`)
 *   pod.cjs build-image --name NAME --out FILE [--file SRC:DEST] [--bytes N] [--entrypoint ARG ...]
 *       writes an OCI archive for `ctr images import` with test/helpers/oci-image.ts: the guest's
 *       files SRC at DEST (mode 0755), plus N bytes of random filler
 */
import { parseArgs } from 'node:util';
import { createCriClient, type CriClient } from '../../../agent/cri/client.js';
import { removePod, runPod, startPodContainer } from '../../../test/helpers/cri-pods.js';
import { buildImageArchive, type ImageFile } from '../../../test/helpers/oci-image.js';
import { readFile } from 'node:fs/promises';

interface StepError {
  step: string;
  message: string;
  code?: string;
  details?: string;
}

function describe(step: string, error: unknown): StepError {
  const e = error as { message?: string; codeName?: string; details?: string };
  return {
    step,
    message: e.message ?? String(error),
    ...(e.codeName === undefined ? {} : { code: e.codeName }),
    ...(e.details === undefined ? {} : { details: e.details }),
  };
}

async function listImages(client: CriClient) {
  const images = await client.listImages();
  return images.map((i) => ({ id: i.id, repoTags: i.repoTags, pinned: i.pinned }));
}

interface RunOptions {
  remove: boolean;
  command: string[] | undefined;
  exit: boolean;
}

async function waitForExit(client: CriClient, containerId: string): Promise<string | undefined> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const [container] = await client.listContainers({ id: containerId });
    if (container?.state !== 'CONTAINER_RUNNING' && container?.state !== 'CONTAINER_CREATED') {
      return container?.state;
    }
    if (Date.now() > deadline) return container.state;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

async function run(client: CriClient, name: string, image: string, options: RunOptions) {
  const started = Date.now();
  const report: Record<string, unknown> = { name, image };
  let step = 'ListImages';
  try {
    report.images = await listImages(client);
    step = 'RunPodSandbox';
    const pod = await runPod(client, { name });
    report.sandboxId = pod.id;
    report.sandboxMs = Date.now() - started;
    step = 'CreateContainer/StartContainer';
    const containerId = await startPodContainer(client, pod, {
      image,
      name: 'main',
      ...(options.command === undefined ? {} : { command: options.command }),
    });
    report.containerId = containerId;
    step = 'ListContainers';
    const state = options.exit
      ? await waitForExit(client, containerId)
      : (await client.listContainers({ id: containerId }))[0]?.state;
    report.containerState = state;
    const [sandbox] = await client.listPodSandboxes({ id: pod.id });
    report.sandboxState = sandbox?.state;
    const expected = options.exit ? 'CONTAINER_EXITED' : 'CONTAINER_RUNNING';
    report.ok = state === expected && sandbox?.state === 'SANDBOX_READY';
    if (options.remove) {
      step = 'remove';
      await removePod(client, pod.id);
      report.removed = true;
    }
  } catch (error) {
    report.ok = false;
    report.error = describe(step, error);
  }
  report.elapsedMs = Date.now() - started;
  return report;
}

async function main(): Promise<number> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      name: { type: 'string', default: 'e2e' },
      image: { type: 'string' },
      remove: { type: 'boolean', default: false },
      command: { type: 'string', multiple: true },
      exit: { type: 'boolean', default: false },
      out: { type: 'string' },
      file: { type: 'string', multiple: true },
      bytes: { type: 'string' },
      entrypoint: { type: 'string', multiple: true },
    },
  });
  if (positionals[0] === 'build-image') {
    if (values.out === undefined) throw new Error('build-image needs --out');
    const files: ImageFile[] = [];
    for (const spec of values.file ?? []) {
      const [src = '', dest = ''] = spec.split(':');
      files.push({ path: dest.replace(/^\/+/, ''), content: await readFile(src), mode: 0o755 });
    }
    const bytes = Number(values.bytes ?? 0);
    const built = await buildImageArchive({
      name: values.name,
      files,
      ...(bytes > 0 ? { fileCount: 4, generatedBytes: bytes, gzipLevel: 0 } : {}),
      ...(values.entrypoint === undefined ? {} : { entrypoint: values.entrypoint }),
      out: values.out,
    });
    console.log(JSON.stringify({ name: built.name, configDigest: built.configDigest }));
    return 0;
  }
  // Sandboxes are slow to start on an emulated CPU; the per-call deadlines are the helpers'.
  const client = await createCriClient({ timeoutMs: 60_000 });
  try {
    switch (positionals[0]) {
      case 'run': {
        if (values.image === undefined) throw new Error('run needs --image');
        const report = await run(client, values.name, values.image, {
          remove: values.remove,
          command: values.command,
          exit: values.exit,
        });
        console.log(JSON.stringify(report, null, 2));
        return report.ok === true ? 0 : 1;
      }
      case 'images': {
        console.log(JSON.stringify(await listImages(client), null, 2));
        return 0;
      }
      default:
        throw new Error(
          'usage: pod.cjs run --name NAME --image IMAGE [--remove] [--command ARG... --exit]' +
            ' | images | build-image --name NAME --out FILE [--file SRC:DEST] [--bytes N]',
        );
    }
  } finally {
    client.close();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exitCode = 2;
  },
);
