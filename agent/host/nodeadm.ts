import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { parseAllDocuments } from 'yaml';

/**
 * nodeadm (the AL2023 EKS node bootstrapper) can take the instance-store disks itself: a
 * NodeConfig with spec.instance.localStorage (which Karpenter writes for
 * `instanceStorePolicy: RAID0`) makes it build its own array after ctrvol-setup has run and
 * bind it over /var/lib/containerd, /var/lib/kubelet and /var/log/pods. Two owners of the same
 * disks or the same directory end with one mount hiding the other's store, so setup looks for
 * such a NodeConfig first.
 */
export interface LocalStorageClaim {
  /** The file it was found in, and which part of it: "user-data.txt (part 2)". */
  source: string;
  /** RAID0, RAID10 or Mount, as the NodeConfig says it. */
  strategy: string;
  /** Directories nodeadm was told to leave alone: Containerd, PodLogs. */
  disabledMounts: string[];
}

/** What nodeadm mounts from its array unless told not to (localStorage.disabledMounts). */
const nodeadmMounts = [
  { directory: '/var/lib/containerd', disabledBy: 'Containerd' },
  { directory: '/var/lib/kubelet', disabledBy: undefined },
  { directory: '/var/log/pods', disabledBy: 'PodLogs' },
];

/**
 * Why a localStorage NodeConfig and ctrvol's config cannot both stand, or undefined when they
 * can: ctrvol on an EBS volume at a directory nodeadm leaves alone shares nothing with it.
 */
export function getOwnerConflict(
  claim: LocalStorageClaim,
  volume: { instanceStore?: string | undefined; mountPoint: string; bindMounts: readonly string[] },
): string | undefined {
  if (volume.instanceStore !== undefined) {
    return 'both would build an array from the instance-store disks';
  }

  // Mount puts each disk at its own folder under /mnt/k8s-disks and binds nothing.
  if (claim.strategy.toLowerCase() === 'mount') {
    return undefined;
  }

  const taken = nodeadmMounts
    .filter(
      (mount) => mount.disabledBy === undefined || !claim.disabledMounts.includes(mount.disabledBy),
    )
    .map((mount) => mount.directory);
  const shared = [volume.mountPoint, ...volume.bindMounts].filter((directory) =>
    taken.includes(directory),
  );
  return shared.length === 0
    ? undefined
    : `nodeadm would mount its own array over ${shared.join(', ')} after ctrvol-setup has run`;
}

export interface NodeadmSources {
  userDataFile: string;
  dropInDir: string;
}

/** Every NodeConfig that sets localStorage, from the user data and nodeadm's drop-in folder. */
export async function findLocalStorageClaims(
  sources: NodeadmSources,
): Promise<LocalStorageClaim[]> {
  const claims: LocalStorageClaim[] = [];
  const userData = await readOptional(sources.userDataFile);
  if (userData !== undefined) {
    claims.push(...findInUserData(decodeUserData(userData), sources.userDataFile));
  }

  const entries = await readdir(sources.dropInDir).catch(() => [] as string[]);
  for (const entry of entries.sort()) {
    if (!/\.(ya?ml|json)$/.test(entry)) {
      continue;
    }

    const file = path.join(sources.dropInDir, entry);
    const text = await readOptional(file);
    if (text !== undefined) {
      claims.push(...findInDocuments(text.toString('utf8'), file));
    }
  }

  return claims;
}

/** EC2 passes user data as given; a gzipped body is common for large MIME documents. */
function decodeUserData(data: Buffer): string {
  if (data[0] === 0x1f && data[1] === 0x8b) {
    try {
      return gunzipSync(data).toString('utf8');
    } catch {
      return '';
    }
  }

  return data.toString('utf8');
}

/**
 * User data is either a MIME multi-part document (nodeadm reads the parts of type
 * application/node.eks.aws; a shell-script part beside them is common) or a NodeConfig as is.
 */
export function findInUserData(text: string, source: string): LocalStorageClaim[] {
  // The document's own headers end at the first empty line; one may be folded onto the next
  // line (RFC 5322), which nodeadm's MIME reader accepts.
  const headerEnd = text.search(/\r?\n\r?\n/);
  const documentHeaders = unfold(headerEnd === -1 ? text : text.slice(0, headerEnd));
  const boundary = /^Content-Type:\s*multipart\/[^;\n]*;[^\n]*boundary="?([^"\s;]+)"?/im.exec(
    documentHeaders,
  )?.[1];
  if (boundary === undefined) {
    return findInDocuments(text, source);
  }

  const claims: LocalStorageClaim[] = [];
  const parts = text.split(`--${boundary}`).slice(1);
  for (const [index, part] of parts.entries()) {
    if (part.startsWith('--')) {
      break;
    }

    const split = /\r?\n\r?\n/.exec(part);
    if (split === null) {
      continue;
    }

    const headers = unfold(part.slice(0, split.index));
    if (!/^Content-Type:\s*application\/node\.eks\.aws/im.test(headers)) {
      continue;
    }

    let body = part.slice(split.index + split[0].length);
    if (/^Content-Transfer-Encoding:\s*base64/im.test(headers)) {
      body = Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
    }

    claims.push(...findInDocuments(body, `${source} (part ${index + 1})`));
  }

  return claims;
}

function unfold(headers: string): string {
  return headers.replace(/\r?\n[ \t]+/g, ' ');
}

/** YAML (one or more documents) or JSON, which YAML also reads. */
export function findInDocuments(text: string, source: string): LocalStorageClaim[] {
  const claims: LocalStorageClaim[] = [];
  let documents: unknown[];
  try {
    documents = parseAllDocuments(text).map((document) =>
      document.errors.length > 0 ? undefined : document.toJS(),
    );
  } catch {
    // Not a NodeConfig ctrvol can read; nodeadm would refuse it too.
    return claims;
  }

  for (const document of documents) {
    const config = document as {
      kind?: unknown;
      spec?: { instance?: { localStorage?: { strategy?: unknown; disabledMounts?: unknown } } };
    } | null;
    const localStorage = config?.spec?.instance?.localStorage;
    if (config?.kind !== 'NodeConfig' || localStorage === undefined || localStorage === null) {
      continue;
    }

    const disabled = Array.isArray(localStorage.disabledMounts)
      ? localStorage.disabledMounts.map(String)
      : [];
    claims.push({
      source,
      strategy: typeof localStorage.strategy === 'string' ? localStorage.strategy : 'unknown',
      disabledMounts: disabled,
    });
  }

  return claims;
}

async function readOptional(file: string): Promise<Buffer | undefined> {
  try {
    return await readFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      return undefined;
    }

    throw error;
  }
}
