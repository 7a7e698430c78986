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
 *   pod.cjs images
 *       prints the images as the CRI lists them (the kubelet's view: tags and `pinned`)
 */
import { parseArgs } from 'node:util';
import { createCriClient, type CriClient } from '../../../agent/cri/client.js';
import { removePod, runPod, startPodContainer } from '../../../test/helpers/cri-pods.js';

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

async function run(client: CriClient, name: string, image: string, remove: boolean) {
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
    const containerId = await startPodContainer(client, pod, { image, name: 'main' });
    report.containerId = containerId;
    step = 'ListContainers';
    const [container] = await client.listContainers({ id: containerId });
    report.containerState = container?.state;
    const [sandbox] = await client.listPodSandboxes({ id: pod.id });
    report.sandboxState = sandbox?.state;
    report.ok = container?.state === 'CONTAINER_RUNNING' && sandbox?.state === 'SANDBOX_READY';
    if (remove) {
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
    },
  });
  // Sandboxes are slow to start on an emulated CPU; the per-call deadlines are the helpers'.
  const client = await createCriClient({ timeoutMs: 60_000 });
  try {
    switch (positionals[0]) {
      case 'run': {
        if (values.image === undefined) throw new Error('run needs --image');
        const report = await run(client, values.name, values.image, values.remove);
        console.log(JSON.stringify(report, null, 2));
        return report.ok === true ? 0 : 1;
      }
      case 'images': {
        console.log(JSON.stringify(await listImages(client), null, 2));
        return 0;
      }
      default:
        throw new Error('usage: pod.cjs run --name NAME --image IMAGE [--remove] | images');
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
