/**
 * The CRI shapes ctrvol works with: camelCase, flat where the wire format wraps a value
 * (Int64Value, UInt64Value, the state wrappers of filters), sizes in plain numbers of bytes,
 * times as Dates.
 */

export type NamespaceMode = 'POD' | 'CONTAINER' | 'NODE' | 'TARGET';
export type PodSandboxState = 'SANDBOX_READY' | 'SANDBOX_NOTREADY';
export type ContainerState =
  'CONTAINER_CREATED' | 'CONTAINER_RUNNING' | 'CONTAINER_EXITED' | 'CONTAINER_UNKNOWN';

export interface CriVersion {
  /** The CRI API version the kubelet side asked about, echoed back. */
  version: string;
  runtimeName: string;
  /** As the runtime spells it: `1.6.20~ds1` from Debian's containerd, `v1.7.24` from upstream. */
  runtimeVersion: string;
  runtimeApiVersion: string;
}

export interface RuntimeCondition {
  type: string;
  status: boolean;
  reason: string;
  message: string;
}

export interface CriStatus {
  conditions: RuntimeCondition[];
  /** Filled only for a verbose request; each value is a JSON text. */
  info: Record<string, string>;
  runtimeHandlers: string[];
}

export interface ImageSpec {
  image: string;
  annotations?: Record<string, string>;
}

export interface CriImage {
  /** `sha256:` and the image config digest. */
  id: string;
  repoTags: string[];
  repoDigests: string[];
  /** Bytes, as the runtime reports them (containerd: the image's content, compressed). */
  size: number;
  uid: number | undefined;
  username: string;
  /** Always false from containerd before 1.6.22 / 1.7.3, whatever the label says. */
  pinned: boolean;
  spec: ImageSpec | undefined;
}

export interface ImageStatus {
  /** Undefined when the runtime does not know the image. */
  image: CriImage | undefined;
  info: Record<string, string>;
}

export interface CriContainer {
  id: string;
  podSandboxId: string;
  name: string;
  attempt: number;
  /** The image as the container was created with it (containerd puts the image ID here). */
  image: string;
  imageRef: string;
  /** Newer runtimes only; empty from containerd 1.6. */
  imageId: string;
  state: ContainerState;
  createdAt: Date;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export interface CriPodSandbox {
  id: string;
  name: string;
  uid: string;
  namespace: string;
  attempt: number;
  state: PodSandboxState;
  createdAt: Date;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  runtimeHandler: string;
}

export interface FilesystemUsage {
  mountpoint: string;
  timestamp: Date;
  /** Undefined when the runtime left it out; containerd says 0 until its first stats pass. */
  usedBytes: number | undefined;
  inodesUsed: number | undefined;
}

export interface ImageFsInfo {
  imageFilesystems: FilesystemUsage[];
  containerFilesystems: FilesystemUsage[];
}

export interface NamespaceOption {
  network?: NamespaceMode;
  pid?: NamespaceMode;
  ipc?: NamespaceMode;
  targetId?: string;
}

export interface PodSandboxMetadata {
  name: string;
  uid: string;
  namespace: string;
  attempt?: number;
}

export interface PodSandboxConfig {
  metadata: PodSandboxMetadata;
  hostname?: string;
  logDirectory?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  linux?: {
    cgroupParent?: string;
    sysctls?: Record<string, string>;
    securityContext?: {
      namespaceOptions?: NamespaceOption;
      runAsUser?: { value: number };
      readonlyRootfs?: boolean;
      privileged?: boolean;
    };
  };
}

export interface ContainerConfig {
  metadata: { name: string; attempt?: number };
  image: ImageSpec;
  command?: string[];
  args?: string[];
  workingDir?: string;
  envs?: { key: string; value: string }[];
  mounts?: { containerPath: string; hostPath: string; readonly?: boolean }[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  logPath?: string;
  linux?: {
    securityContext?: {
      privileged?: boolean;
      namespaceOptions?: NamespaceOption;
      runAsUser?: { value: number };
      readonlyRootfs?: boolean;
    };
  };
}

export interface ContainerFilter {
  id?: string;
  state?: ContainerState;
  podSandboxId?: string;
  labelSelector?: Record<string, string>;
}

export interface PodSandboxFilter {
  id?: string;
  state?: PodSandboxState;
  labelSelector?: Record<string, string>;
}

export interface CallOptions {
  /** Overrides the client's deadline for this call. */
  timeoutMs?: number;
}
