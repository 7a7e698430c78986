import { rm } from 'node:fs/promises';
import path from 'node:path';
import {
  Server,
  ServerCredentials,
  status as grpcStatus,
  type sendUnaryData,
  type ServerUnaryCall,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { PINNED_LABEL } from '../../agent/containerd/images.js';
import { normalizeImageRef } from '../../agent/containerd/image-ref.js';
import type { ContainerState, CriVersion, PodSandboxState } from '../../agent/cri/client.js';
import { getSchema, type ServiceMethods } from '../../agent/cri/schema.js';
import { makeTempDir } from './temp.js';

/**
 * A stand-in for containerd's CRI and image metadata services, backed by in-memory lists and
 * served from the same embedded proto as the client, on a unix socket in a temp dir. It answers
 * the read-only calls and RemoveImage the way containerd 1.6 does; any other call (starting or
 * stopping pods and containers, an unknown filter) is recorded and answered with an error, so
 * that code meant only to read and prune cannot quietly do more.
 */

export interface FakeImage {
  /** `sha256:` and 64 hex digits. */
  id: string;
  repoTags?: string[];
  repoDigests?: string[];
  size: number;
  /** Reported through the CRI `pinned` field, as containerd ≥ 1.6.22 / 1.7.3 does. */
  pinned?: boolean;
  /** Puts the pinned label on every name in containerd's own image records. */
  pinnedLabel?: boolean;
}

export interface FakeContainer {
  id: string;
  podSandboxId?: string;
  name?: string;
  /** What the container was created from; containerd reports the image ID here. */
  image: string;
  imageRef?: string;
  state?: ContainerState;
  labels?: Record<string, string>;
  createdAt?: Date;
}

export interface FakeSandbox {
  id: string;
  name?: string;
  namespace?: string;
  uid?: string;
  state?: PodSandboxState;
  labels?: Record<string, string>;
  createdAt?: Date;
}

export interface FakeRuntimeOptions {
  images?: FakeImage[];
  containers?: FakeContainer[];
  sandboxes?: FakeSandbox[];
  version?: Partial<CriVersion>;
  /** Status's verbose info; by default a 1.6-style `config` naming the sandbox image. */
  statusInfo?: Record<string, string>;
  imageFs?: { mountpoint: string; usedBytes: number; inodesUsed: number };
  /** Makes RemoveImage fail for some references, to test how a caller copes. */
  removeImageError?: (ref: string) => { code: grpcStatus; details: string } | undefined;
  /**
   * Runs before each call is answered, with the running count of calls to that method, so a
   * test can change the node between two calls, as a kubelet starting a container would.
   */
  beforeCall?: (method: string, count: number) => void;
}

export interface FakeCall {
  method: string;
  request: unknown;
  /** The `containerd-namespace` header, for containerd's own services. */
  namespace: string | undefined;
}

export interface FakeRuntime {
  socket: string;
  /** Live state: a test may change it between calls. */
  images: FakeImage[];
  containers: FakeContainer[];
  sandboxes: FakeSandbox[];
  calls: FakeCall[];
  /** Image references RemoveImage removed something for. */
  removed: string[];
  /** Calls the fake refused, as `Method: why`. */
  unexpected: string[];
  assertNoUnexpectedCalls(): void;
  close(): Promise<void>;
}

const IMAGE_ID = /^(?:sha256:)?([a-f0-9]{64})$/;

function nanos(date: Date | undefined): number {
  return (date ?? new Date(0)).getTime() * 1e6;
}

function matchesLabels(
  labels: Record<string, string> | undefined,
  selector: Record<string, string>,
): boolean {
  return Object.entries(selector).every(([key, value]) => labels?.[key] === value);
}

function sameRef(a: string, b: string): boolean {
  try {
    return normalizeImageRef(a) === normalizeImageRef(b);
  } catch {
    return a === b;
  }
}

/** Finds an image as containerd's CRI does: by full ID, else by normalised tag or digest name. */
function resolveImage(images: FakeImage[], ref: string): FakeImage | undefined {
  const id = IMAGE_ID.exec(ref);
  if (id !== null) return images.find((image) => image.id === `sha256:${id[1]}`);
  return images.find((image) =>
    [...(image.repoTags ?? []), ...(image.repoDigests ?? [])].some((name) => sameRef(name, ref)),
  );
}

function rawImage(image: FakeImage): object {
  return {
    id: image.id,
    repoTags: image.repoTags ?? [],
    repoDigests: image.repoDigests ?? [],
    size: image.size,
    username: '',
    pinned: image.pinned ?? false,
  };
}

/** containerd keeps one record per name, plus one named by the image ID that the CRI adds. */
function containerdRecords(image: FakeImage): object[] {
  const names = [...(image.repoTags ?? []), ...(image.repoDigests ?? []), image.id];
  const manifest = image.repoDigests?.[0]?.split('@')[1] ?? image.id;
  return names.map((name) => ({
    name,
    labels: {
      'io.cri-containerd.image': 'managed',
      ...(image.pinnedLabel && name !== image.id ? { [PINNED_LABEL]: 'pinned' } : {}),
    },
    target: {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: manifest,
      size: 400,
    },
  }));
}

// containerd filter syntax, only as far as ctrvol uses it; anything else is refused loudly.
const FILTER = /^(name|labels\."([^"]+)")==(.*)$/;

export async function startFakeRuntime(options: FakeRuntimeOptions = {}): Promise<FakeRuntime> {
  const temp = await makeTempDir('ctrvol-fake-cri');
  const socket = path.join(temp.path, 'cri.sock');
  const state = {
    images: options.images ?? [],
    containers: options.containers ?? [],
    sandboxes: options.sandboxes ?? [],
  };
  const calls: FakeCall[] = [];
  const removed: string[] = [];
  const unexpected: string[] = [];
  const schema = getSchema();

  type Handler = (request: Record<string, unknown>, namespace: string | undefined) => object;

  const refuse = (method: string, why: string): never => {
    unexpected.push(`${method}: ${why}`);
    throw Object.assign(new Error(`fake runtime: unexpected call to ${method}: ${why}`), {
      code: grpcStatus.FAILED_PRECONDITION,
    });
  };

  const handlers: Record<string, Handler> = {
    Version: () => ({
      version: '0.1.0',
      runtimeName: 'containerd',
      runtimeVersion: '1.6.20~ds1',
      runtimeApiVersion: 'v1',
      ...options.version,
    }),

    Status: (request) => ({
      status: {
        conditions: [
          { type: 'RuntimeReady', status: true },
          { type: 'NetworkReady', status: true },
        ],
      },
      info:
        request.verbose === true
          ? (options.statusInfo ?? {
              config: JSON.stringify({
                sandboxImage: 'localhost/kubernetes/pause:latest',
                containerdRootDir: '/var/lib/containerd',
              }),
            })
          : {},
    }),

    ListImages: (request) => {
      const filter = (request.filter as { image: { image: string } | null } | null)?.image?.image;
      const images = filter
        ? state.images.filter((i) => i === resolveImage([i], filter))
        : state.images;
      return { images: images.map(rawImage) };
    },

    ImageStatus: (request) => {
      const ref = (request.image as { image: string } | null)?.image ?? '';
      const image = resolveImage(state.images, ref);
      return image === undefined ? {} : { image: rawImage(image) };
    },

    RemoveImage: (request) => {
      const ref = (request.image as { image: string } | null)?.image ?? '';
      const injected = options.removeImageError?.(ref);
      if (injected !== undefined) {
        throw Object.assign(new Error(injected.details), injected);
      }
      const image = resolveImage(state.images, ref);
      // Like containerd: every name of the image goes, and an unknown image is no error.
      if (image !== undefined) {
        state.images.splice(state.images.indexOf(image), 1);
        removed.push(ref);
      }
      return {};
    },

    ImageFsInfo: () => {
      const fs = options.imageFs ?? {
        mountpoint: '/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs',
        usedBytes: state.images.reduce((sum, image) => sum + image.size, 0),
        inodesUsed: 100,
      };
      return {
        imageFilesystems: [
          {
            timestamp: nanos(new Date()),
            fsId: { mountpoint: fs.mountpoint },
            usedBytes: { value: fs.usedBytes },
            inodesUsed: { value: fs.inodesUsed },
          },
        ],
        containerFilesystems: [],
      };
    },

    ListContainers: (request) => {
      const filter = (request.filter ?? {}) as {
        id?: string;
        podSandboxId?: string;
        state?: { state: ContainerState } | null;
        labelSelector?: Record<string, string>;
      };
      const containers = state.containers.filter(
        (c) =>
          (!filter.id || c.id === filter.id) &&
          (!filter.podSandboxId || c.podSandboxId === filter.podSandboxId) &&
          (!filter.state || (c.state ?? 'CONTAINER_RUNNING') === filter.state.state) &&
          matchesLabels(c.labels, filter.labelSelector ?? {}),
      );
      return {
        containers: containers.map((c) => ({
          id: c.id,
          podSandboxId: c.podSandboxId ?? '',
          metadata: { name: c.name ?? c.id, attempt: 0 },
          image: { image: c.image },
          imageRef: c.imageRef ?? c.image,
          state: c.state ?? 'CONTAINER_RUNNING',
          createdAt: nanos(c.createdAt),
          labels: c.labels ?? {},
        })),
      };
    },

    ListPodSandbox: (request) => {
      const filter = (request.filter ?? {}) as {
        id?: string;
        state?: { state: PodSandboxState } | null;
        labelSelector?: Record<string, string>;
      };
      const sandboxes = state.sandboxes.filter(
        (s) =>
          (!filter.id || s.id === filter.id) &&
          (!filter.state || (s.state ?? 'SANDBOX_READY') === filter.state.state) &&
          matchesLabels(s.labels, filter.labelSelector ?? {}),
      );
      return {
        items: sandboxes.map((s) => ({
          id: s.id,
          metadata: {
            name: s.name ?? s.id,
            uid: s.uid ?? s.id,
            namespace: s.namespace ?? 'default',
            attempt: 0,
          },
          state: s.state ?? 'SANDBOX_READY',
          createdAt: nanos(s.createdAt),
          labels: s.labels ?? {},
        })),
      };
    },

    List: (request, namespace) => {
      // containerd keeps each namespace apart; the CRI's images are all in k8s.io.
      if (namespace !== 'k8s.io') return { images: [] };
      const records = state.images.flatMap(containerdRecords) as {
        name: string;
        labels: Record<string, string>;
      }[];
      const filters = (request.filters as string[] | undefined) ?? [];
      if (filters.length === 0) return { images: records };
      const tests = filters.map((filter) => {
        const match = FILTER.exec(filter);
        if (match === null) return refuse('Images/List', `filter ${filter} is not supported`);
        const [, field, label, value = ''] = match;
        return (record: { name: string; labels: Record<string, string> }): boolean =>
          (field === 'name' ? record.name : record.labels[label ?? '']) === value;
      });
      return { images: records.filter((record) => tests.some((test) => test(record))) };
    },
  };

  const server = new Server();
  const implement = (service: ServiceMethods, prefix: string): UntypedServiceImplementation => {
    const implementation: UntypedServiceImplementation = {};
    for (const name of Object.keys(service)) {
      implementation[name] = (
        call: ServerUnaryCall<Record<string, unknown>, object>,
        callback: sendUnaryData<object>,
      ) => {
        const namespace = call.metadata.get('containerd-namespace')[0]?.toString();
        calls.push({ method: `${prefix}${name}`, request: call.request, namespace });
        const count = calls.filter((recorded) => recorded.method === `${prefix}${name}`).length;
        options.beforeCall?.(name, count);
        try {
          const handler = handlers[name];
          if (handler === undefined) {
            return refuse(`${prefix}${name}`, 'the fake runtime does not run pods');
          }
          callback(null, handler(call.request, namespace));
        } catch (error) {
          const { code, message } = error as { code?: number; message: string };
          callback({ code: code ?? grpcStatus.INTERNAL, details: message }, null);
        }
      };
    }
    return implementation;
  };
  server.addService(schema.runtimeService, implement(schema.runtimeService, ''));
  server.addService(schema.imageService, implement(schema.imageService, ''));
  server.addService(schema.containerdImages, implement(schema.containerdImages, 'Images/'));

  await new Promise<void>((resolve, reject) => {
    server.bindAsync(`unix:${socket}`, ServerCredentials.createInsecure(), (error) =>
      error ? reject(error) : resolve(),
    );
  }).catch(async (error: unknown) => {
    server.forceShutdown();
    await temp.cleanup();
    throw error;
  });

  let closed = false;
  return {
    socket,
    ...state,
    calls,
    removed,
    unexpected,
    assertNoUnexpectedCalls() {
      if (unexpected.length > 0) {
        throw new Error(`unexpected calls to the fake runtime:\n${unexpected.join('\n')}`);
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      await rm(socket, { force: true });
      await temp.cleanup();
    },
  };
}
