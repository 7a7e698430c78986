import { access } from 'node:fs/promises';
import type { CommonOptions } from '../cli/args.js';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { findSandboxImage } from '../containerd/sandbox-image.js';
import type { CriClient } from '../cri/client.js';
import { StepError } from '../errors.js';
import { createRunner, type Runner } from '../exec.js';
import type { Logger } from '../log/logger.js';
import { connectCri } from './cri.js';

// containerd's unit turns active a moment before its socket answers, and nodeadm restarts it.
const containerdWaitSeconds = 60;

const pinnedLabel = 'io.cri-containerd.pinned=pinned';

/**
 * After containerd starts: its sandbox image must be there, or no pod can start on this node.
 * A missing one is imported from the archive the AMI keeps for this (/etc/eks/pause.tar) and
 * pinned, so that neither the kubelet's image GC nor ctrvol's prune removes it again.
 */
export async function verify(common: CommonOptions, logger: Logger): Promise<string> {
  const config = await loadConfig(common.config);
  const client = await connectCri(config, logger, containerdWaitSeconds);
  try {
    return await verifySandboxImage(config, client, createRunner(logger), logger);
  } finally {
    client.close();
  }
}

async function verifySandboxImage(
  config: Config,
  client: CriClient,
  run: Runner,
  logger: Logger,
): Promise<string> {
  const sandbox = await findSandboxImage({ client, configPath: config.containerd.config });
  const image = sandbox.name;
  logger.info({ image, source: sandbox.source }, 'checking the sandbox image');
  if (sandbox.root !== config.volume.mountPoint) {
    logger.warn(
      { root: sandbox.root, mountPoint: config.volume.mountPoint },
      "containerd's root is not the volume's mount point: its images are not on the volume",
    );
  }

  const ctr = (...args: string[]) =>
    run.run('ctr', ['--address', config.containerd.socket, '--namespace', 'k8s.io', ...args], {
      packageHint: 'containerd',
    });

  const found = await client.imageStatus(image);
  if (found.image !== undefined) {
    if (!(await isPinned(client, image, found.image.pinned))) {
      await ctr('images', 'label', image, pinnedLabel);
      logger.info({ image }, 'the sandbox image was not pinned; labelled it pinned');
      return `sandbox image ${image} is present; pinned it\n`;
    }

    return `sandbox image ${image} is present and pinned\n`;
  }

  const archive = config.containerd.sandboxImageArchive;
  if (
    !(await access(archive).then(
      () => true,
      () => false,
    ))
  ) {
    throw new StepError(
      `sandbox image ${image} is missing from containerd (namespace k8s.io) and there is no ` +
        `archive at ${archive}: no pod can start on this node`,
      {
        hint:
          `import it with "ctr -n k8s.io images import FILE" and label it ${pinnedLabel}, ` +
          'or set containerd.sandboxImageArchive',
      },
    );
  }

  logger.warn({ image, archive }, 'the sandbox image is missing; importing it from the archive');
  await ctr('images', 'import', archive);
  const imported = await client.imageStatus(image);
  if (imported.image === undefined) {
    throw new StepError(`${archive} does not hold ${image}; it was imported but did not help`, {
      hint: 'point containerd.sandboxImageArchive at an export of the configured sandbox image',
    });
  }

  await ctr('images', 'label', image, pinnedLabel);
  logger.info({ image }, 'imported and pinned the sandbox image');
  return `sandbox image ${image} was missing; imported it from ${archive} and pinned it\n`;
}

/** containerd before 1.6.22 / 1.7.3 reports no pin through CRI; its own label says. */
async function isPinned(client: CriClient, image: string, criPinned: boolean): Promise<boolean> {
  if (criPinned) {
    return true;
  }

  const { listPinnedImageNames } = await import('../cri/index.js');
  return (await listPinnedImageNames(client)).has(image);
}
