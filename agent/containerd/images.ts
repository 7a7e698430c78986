import type { CallOptions, CriClient } from '../cri/client.js';
import type { GrpcConnection } from '../cri/connection.js';
import { getSchema, method } from '../cri/schema.js';

/** The namespace the CRI plugin keeps Kubernetes' images in. */
export const K8S_NAMESPACE = 'k8s.io';
/** The label (value `pinned`) that marks an image the kubelet must never collect. */
export const PINNED_LABEL = 'io.cri-containerd.pinned';

/** An image record as containerd's metadata store has it: one per name. */
export interface ContainerdImage {
  name: string;
  labels: Record<string, string>;
  target: { mediaType: string; digest: string; size: number };
  createdAt: Date | undefined;
  updatedAt: Date | undefined;
  pinned: boolean;
}

interface RawTimestamp {
  seconds: number;
  nanos: number;
}
interface RawImage {
  name: string;
  labels: Record<string, string>;
  target: { mediaType: string; digest: string; size: number } | null;
  createdAt: RawTimestamp | null;
  updatedAt: RawTimestamp | null;
}

function toDate(raw: RawTimestamp | null): Date | undefined {
  return raw === null ? undefined : new Date(raw.seconds * 1000 + Math.floor(raw.nanos / 1e6));
}

export interface ListContainerdImagesOptions extends CallOptions {
  namespace?: string;
  /**
   * containerd filter expressions, any of which may match, e.g.
   * `labels."io.cri-containerd.pinned"==pinned` or `name==docker.io/library/busybox:latest`.
   */
  filters?: string[];
}

/**
 * Lists image records through containerd's own Images service, on the same socket as the CRI.
 * The namespace travels as the `containerd-namespace` gRPC header, as ctr's `-n` does.
 */
export async function listContainerdImages(
  via: CriClient | GrpcConnection,
  options: ListContainerdImagesOptions = {},
): Promise<ContainerdImage[]> {
  const connection = 'connection' in via ? via.connection : via;
  const raw = await connection.unary<{ images: RawImage[] }>(
    method(getSchema().containerdImages, 'List'),
    { filters: options.filters ?? [] },
    {
      timeoutMs: options.timeoutMs,
      metadata: { 'containerd-namespace': options.namespace ?? K8S_NAMESPACE },
    },
  );
  return raw.images.map((image) => ({
    name: image.name,
    labels: image.labels,
    target: image.target ?? { mediaType: '', digest: '', size: 0 },
    createdAt: toDate(image.createdAt),
    updatedAt: toDate(image.updatedAt),
    pinned: image.labels[PINNED_LABEL] === 'pinned',
  }));
}

/**
 * The names labelled pinned, as containerd ≥ 1.6.22 / 1.7.3 would report them through the CRI.
 * Older containerd ignores the label, so this is the only way to learn it there.
 */
export async function listPinnedImageNames(
  via: CriClient | GrpcConnection,
  options: Omit<ListContainerdImagesOptions, 'filters'> = {},
): Promise<Set<string>> {
  const images = await listContainerdImages(via, options);
  return new Set(images.filter((image) => image.pinned).map((image) => image.name));
}
