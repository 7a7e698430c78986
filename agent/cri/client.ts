import {
  openConnection,
  type CallStats,
  type ConnectionOptions,
  type GrpcConnection,
} from './connection.js';
import { getSchema, method, type ServiceMethods } from './schema.js';
import type {
  CallOptions,
  ContainerConfig,
  ContainerFilter,
  CriContainer,
  CriImage,
  CriPodSandbox,
  CriStatus,
  CriVersion,
  FilesystemUsage,
  ImageFsInfo,
  ImageSpec,
  ImageStatus,
  PodSandboxConfig,
  PodSandboxFilter,
} from './types.js';

export { DEFAULT_SOCKET, DEFAULT_TIMEOUT_MS, GrpcCallError } from './connection.js';
export type { ConnectionOptions, GrpcConnection } from './connection.js';
export type * from './types.js';

/**
 * A small client for the CRI services containerd serves on its socket. Import it lazily
 * (`await import('../cri/client.js')`): gRPC and protobuf are most of the bundle's weight and
 * only the commands that talk to containerd should pay for loading them.
 */
export interface CriClient {
  readonly socket: string;
  /** The channel, shared with containerd's own services (see agent/containerd/images.ts). */
  readonly connection: GrpcConnection;
  readonly stats: CallStats;
  version(options?: CallOptions): Promise<CriVersion>;
  status(options?: CallOptions & { verbose?: boolean }): Promise<CriStatus>;
  listContainers(filter?: ContainerFilter, options?: CallOptions): Promise<CriContainer[]>;
  listPodSandboxes(filter?: PodSandboxFilter, options?: CallOptions): Promise<CriPodSandbox[]>;
  /** Returns the sandbox ID. */
  runPodSandbox(
    config: PodSandboxConfig,
    options?: CallOptions & { runtimeHandler?: string },
  ): Promise<string>;
  /** Returns the container ID. */
  createContainer(
    podSandboxId: string,
    config: ContainerConfig,
    sandboxConfig: PodSandboxConfig,
    options?: CallOptions,
  ): Promise<string>;
  startContainer(containerId: string, options?: CallOptions): Promise<void>;
  /** `timeoutSeconds` is the grace period before the runtime kills; 0 kills at once. */
  stopContainer(containerId: string, timeoutSeconds?: number, options?: CallOptions): Promise<void>;
  removeContainer(containerId: string, options?: CallOptions): Promise<void>;
  stopPodSandbox(podSandboxId: string, options?: CallOptions): Promise<void>;
  removePodSandbox(podSandboxId: string, options?: CallOptions): Promise<void>;
  listImages(filter?: { image?: string }, options?: CallOptions): Promise<CriImage[]>;
  /** `image` is a name, `name@digest` or image ID; an unknown one gives `image: undefined`. */
  imageStatus(image: string, options?: CallOptions & { verbose?: boolean }): Promise<ImageStatus>;
  /** Removes one name of an image; containerd frees the content once no name is left. */
  removeImage(image: string, options?: CallOptions): Promise<void>;
  imageFsInfo(options?: CallOptions): Promise<ImageFsInfo>;
  close(): void;
}

// What protobufjs's toObject gives for the messages read here: every scalar present (defaults
// on), absent sub-messages as null, 64-bit values as numbers and enums as names.
interface RawImageSpec {
  image: string;
  annotations: Record<string, string>;
}
interface RawImage {
  id: string;
  repoTags: string[];
  repoDigests: string[];
  size: number;
  uid: { value: number } | null;
  username: string;
  spec: RawImageSpec | null;
  pinned: boolean;
}
interface RawContainer {
  id: string;
  podSandboxId: string;
  metadata: { name: string; attempt: number } | null;
  image: RawImageSpec | null;
  imageRef: string;
  state: CriContainer['state'];
  createdAt: number;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  imageId: string;
}
interface RawPodSandbox {
  id: string;
  metadata: { name: string; uid: string; namespace: string; attempt: number } | null;
  state: CriPodSandbox['state'];
  createdAt: number;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  runtimeHandler: string;
}
interface RawFilesystemUsage {
  timestamp: number;
  fsId: { mountpoint: string } | null;
  usedBytes: { value: number } | null;
  inodesUsed: { value: number } | null;
}

/** CRI times are nanoseconds since the epoch. */
function fromNanos(nanos: number): Date {
  return new Date(Math.floor(nanos / 1e6));
}

function toSpec(raw: RawImageSpec | null): ImageSpec | undefined {
  return raw === null ? undefined : { image: raw.image, annotations: raw.annotations };
}

function toImage(raw: RawImage): CriImage {
  return {
    id: raw.id,
    repoTags: raw.repoTags,
    repoDigests: raw.repoDigests,
    size: raw.size,
    uid: raw.uid?.value,
    username: raw.username,
    pinned: raw.pinned,
    spec: toSpec(raw.spec),
  };
}

function toContainer(raw: RawContainer): CriContainer {
  return {
    id: raw.id,
    podSandboxId: raw.podSandboxId,
    name: raw.metadata?.name ?? '',
    attempt: raw.metadata?.attempt ?? 0,
    image: raw.image?.image ?? '',
    imageRef: raw.imageRef,
    imageId: raw.imageId,
    state: raw.state,
    createdAt: fromNanos(raw.createdAt),
    labels: raw.labels,
    annotations: raw.annotations,
  };
}

function toPodSandbox(raw: RawPodSandbox): CriPodSandbox {
  return {
    id: raw.id,
    name: raw.metadata?.name ?? '',
    uid: raw.metadata?.uid ?? '',
    namespace: raw.metadata?.namespace ?? '',
    attempt: raw.metadata?.attempt ?? 0,
    state: raw.state,
    createdAt: fromNanos(raw.createdAt),
    labels: raw.labels,
    annotations: raw.annotations,
    runtimeHandler: raw.runtimeHandler,
  };
}

function toUsage(raw: RawFilesystemUsage): FilesystemUsage {
  return {
    mountpoint: raw.fsId?.mountpoint ?? '',
    timestamp: fromNanos(raw.timestamp),
    usedBytes: raw.usedBytes?.value,
    inodesUsed: raw.inodesUsed?.value,
  };
}

function stateFilter<State>(state: State | undefined): { state: State } | undefined {
  return state === undefined ? undefined : { state };
}

/** Wraps an open connection; tests use this to point a client at a server of their own. */
export function criClientFor(connection: GrpcConnection): CriClient {
  const schema = getSchema();
  const call = <Response>(
    service: ServiceMethods,
    name: string,
    request: object,
    options: CallOptions = {},
  ): Promise<Response> =>
    connection.unary<Response>(method(service, name), request, { timeoutMs: options.timeoutMs });
  const runtime = schema.runtimeService;
  const images = schema.imageService;

  return {
    socket: connection.socket,
    connection,
    stats: connection.stats,

    async version(options) {
      // The request's field is the kubelet's own CRI version; containerd ignores it.
      return call<CriVersion>(runtime, 'Version', { version: 'v1' }, options);
    },

    async status(options = {}) {
      const raw = await call<{
        status: { conditions: CriStatus['conditions'] } | null;
        info: Record<string, string>;
        runtimeHandlers: { name: string }[];
      }>(runtime, 'Status', { verbose: options.verbose ?? false }, options);
      return {
        conditions: raw.status?.conditions ?? [],
        info: raw.info,
        runtimeHandlers: raw.runtimeHandlers.map((handler) => handler.name),
      };
    },

    async listContainers(filter = {}, options) {
      const raw = await call<{ containers: RawContainer[] }>(
        runtime,
        'ListContainers',
        { filter: { ...filter, state: stateFilter(filter.state) } },
        options,
      );
      return raw.containers.map(toContainer);
    },

    async listPodSandboxes(filter = {}, options) {
      const raw = await call<{ items: RawPodSandbox[] }>(
        runtime,
        'ListPodSandbox',
        { filter: { ...filter, state: stateFilter(filter.state) } },
        options,
      );
      return raw.items.map(toPodSandbox);
    },

    async runPodSandbox(config, options = {}) {
      const raw = await call<{ podSandboxId: string }>(
        runtime,
        'RunPodSandbox',
        { config, runtimeHandler: options.runtimeHandler ?? '' },
        options,
      );
      return raw.podSandboxId;
    },

    async createContainer(podSandboxId, config, sandboxConfig, options) {
      const raw = await call<{ containerId: string }>(
        runtime,
        'CreateContainer',
        { podSandboxId, config, sandboxConfig },
        options,
      );
      return raw.containerId;
    },

    async startContainer(containerId, options) {
      await call(runtime, 'StartContainer', { containerId }, options);
    },

    async stopContainer(containerId, timeoutSeconds = 0, options) {
      await call(runtime, 'StopContainer', { containerId, timeout: timeoutSeconds }, options);
    },

    async removeContainer(containerId, options) {
      await call(runtime, 'RemoveContainer', { containerId }, options);
    },

    async stopPodSandbox(podSandboxId, options) {
      await call(runtime, 'StopPodSandbox', { podSandboxId }, options);
    },

    async removePodSandbox(podSandboxId, options) {
      await call(runtime, 'RemovePodSandbox', { podSandboxId }, options);
    },

    async listImages(filter = {}, options) {
      const request =
        filter.image === undefined ? {} : { filter: { image: { image: filter.image } } };
      const raw = await call<{ images: RawImage[] }>(images, 'ListImages', request, options);
      return raw.images.map(toImage);
    },

    async imageStatus(image, options = {}) {
      const raw = await call<{ image: RawImage | null; info: Record<string, string> }>(
        images,
        'ImageStatus',
        { image: { image }, verbose: options.verbose ?? false },
        options,
      );
      // proto3 cannot tell an absent message from an empty one on every runtime; an image
      // without an ID is no image.
      const found = raw.image !== null && raw.image.id !== '' ? toImage(raw.image) : undefined;
      return { image: found, info: raw.info };
    },

    async removeImage(image, options) {
      await call(images, 'RemoveImage', { image: { image } }, options);
    },

    async imageFsInfo(options) {
      const raw = await call<{
        imageFilesystems: RawFilesystemUsage[];
        containerFilesystems: RawFilesystemUsage[];
      }>(images, 'ImageFsInfo', {}, options);
      return {
        imageFilesystems: raw.imageFilesystems.map(toUsage),
        containerFilesystems: raw.containerFilesystems.map(toUsage),
      };
    },

    close: () => connection.close(),
  };
}

/**
 * Opens a client on containerd's socket. Fails at once with an EnvironmentError (exit code 3)
 * when the socket is missing; every later call fails the same way when containerd does not
 * answer within the deadline.
 */
export async function createCriClient(options: ConnectionOptions = {}): Promise<CriClient> {
  return criClientFor(await openConnection(options));
}

/** Opens a client, runs `fn` with it and closes it, however `fn` ends. */
export async function withCriClient<T>(
  options: ConnectionOptions,
  fn: (client: CriClient) => Promise<T>,
): Promise<T> {
  const client = await createCriClient(options);
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}
