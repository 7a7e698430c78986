import { randomUUID } from 'node:crypto';
import type { ContainerConfig, CriClient, PodSandboxConfig } from '../../agent/cri/client.js';

/**
 * Runs pods through the CRI as the kubelet would, for tests that need containers using images
 * (an image in use must survive a prune). The sandboxes share the host's network namespace, so
 * no CNI plugin or config is needed.
 *
 * On the development host runc cannot start a sandbox ("can't get final child's PID from
 * pipe"); these run for real inside the qemu guest.
 */

/** Creating a sandbox unpacks the pause image and starts a shim: give it more than a list call. */
export const POD_TIMEOUT_MS = 60_000;

/** Every object made here carries this label, so a test can find its leftovers. */
export const TEST_LABEL = 'ctrvol.test/pod';

export interface PodOptions {
  name?: string;
  namespace?: string;
  /** Where containerd writes container logs; without it containers log nowhere. */
  logDirectory?: string;
  labels?: Record<string, string>;
}

export interface Pod {
  id: string;
  config: PodSandboxConfig;
}

export interface PodContainerOptions {
  name?: string;
  /** Any name or ID the runtime knows; no pull happens, so it must already be there. */
  image: string;
  command?: string[];
  args?: string[];
}

export function hostNetworkPodConfig(options: PodOptions = {}): PodSandboxConfig {
  const name = options.name ?? `ctrvol-test-${randomUUID().slice(0, 8)}`;
  return {
    metadata: {
      name,
      uid: randomUUID(),
      namespace: options.namespace ?? 'ctrvol-test',
      attempt: 0,
    },
    // With the node's network the hostname is the node's, and the CRI allows it to be empty.
    hostname: '',
    logDirectory: options.logDirectory ?? '',
    labels: { [TEST_LABEL]: name, ...options.labels },
    linux: {
      securityContext: {
        // NODE network is what makes CNI unnecessary; PID and IPC stay the pod's own.
        namespaceOptions: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' },
      },
    },
  };
}

/** Runs a sandbox and returns it; the caller removes it with removePod. */
export async function runPod(client: CriClient, options: PodOptions = {}): Promise<Pod> {
  const config = hostNetworkPodConfig(options);
  const id = await client.runPodSandbox(config, { timeoutMs: POD_TIMEOUT_MS });
  return { id, config };
}

/** Creates and starts a container in the pod; returns its ID. */
export async function startPodContainer(
  client: CriClient,
  pod: Pod,
  options: PodContainerOptions,
): Promise<string> {
  const name = options.name ?? 'main';
  const config: ContainerConfig = {
    metadata: { name, attempt: 0 },
    image: { image: options.image },
    command: options.command ?? [],
    args: options.args ?? [],
    labels: { [TEST_LABEL]: pod.config.metadata.name },
    logPath: pod.config.logDirectory ? `${name}.log` : '',
    linux: { securityContext: { namespaceOptions: { network: 'NODE', pid: 'CONTAINER' } } },
  };
  const id = await client.createContainer(pod.id, config, pod.config, {
    timeoutMs: POD_TIMEOUT_MS,
  });
  await client.startContainer(id, { timeoutMs: POD_TIMEOUT_MS });
  return id;
}

/**
 * Stops and removes the pod's containers, then the pod, as the kubelet does. Goes on past a
 * failure so that one stuck container does not leave the rest behind, and throws the first
 * error at the end.
 */
export async function removePod(client: CriClient, podId: string): Promise<void> {
  const errors: unknown[] = [];
  const attempt = async (fn: () => Promise<void>): Promise<void> => {
    await fn().catch((error: unknown) => {
      errors.push(error);
    });
  };
  const containers = await client.listContainers({ podSandboxId: podId });
  for (const container of containers) {
    await attempt(() => client.stopContainer(container.id, 0, { timeoutMs: POD_TIMEOUT_MS }));
    await attempt(() => client.removeContainer(container.id, { timeoutMs: POD_TIMEOUT_MS }));
  }
  await attempt(() => client.stopPodSandbox(podId, { timeoutMs: POD_TIMEOUT_MS }));
  await attempt(() => client.removePodSandbox(podId, { timeoutMs: POD_TIMEOUT_MS }));
  if (errors.length > 0) throw errors[0];
}

/** Removes every pod this helper made that is still there, e.g. after a test died midway. */
export async function removeTestPods(client: CriClient): Promise<number> {
  const pods = await client.listPodSandboxes();
  const ours = pods.filter((pod) => pod.labels[TEST_LABEL] !== undefined);
  for (const pod of ours) await removePod(client, pod.id);
  return ours.length;
}

/** A pod with one running container, and the one call that takes both down again. */
export async function runPodWithContainer(
  client: CriClient,
  container: PodContainerOptions,
  options: PodOptions = {},
): Promise<{ pod: Pod; containerId: string; remove: () => Promise<void> }> {
  const pod = await runPod(client, options);
  const remove = (): Promise<void> => removePod(client, pod.id);
  try {
    const containerId = await startPodContainer(client, pod, container);
    return { pod, containerId, remove };
  } catch (error) {
    await remove().catch(() => undefined);
    throw error;
  }
}
