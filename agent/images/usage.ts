import { readJson, writeJsonDurably } from '../state/files.js';

/**
 * When ctrvol first saw each image and when it last saw a container use it. CRI keeps neither,
 * and the kubelet's own record lives only in its memory, so prune's least-recently-used order
 * and its minimum age rest on this file in /var/lib/ctrvol.
 */
export interface ImageUsage {
  version: 1;
  /** By image id (sha256:…), in milliseconds since the epoch. */
  images: Record<string, { firstSeen: number; lastUsed?: number }>;
}

export const emptyUsage = (): ImageUsage => ({ version: 1, images: {} });

/**
 * The record, or an empty one when there is none. A damaged record is replaced rather than
 * refused: starting afresh only makes every image young again, which protects them all, and a
 * monitor stuck on a bad file would never prune again.
 */
export async function readUsage(
  file: string,
  onDamaged: (why: string) => void = () => undefined,
): Promise<ImageUsage> {
  let usage: unknown;
  try {
    usage = await readJson<unknown>(file);
  } catch (error) {
    onDamaged((error as Error).message);
    return emptyUsage();
  }

  if (usage === undefined) {
    return emptyUsage();
  }

  if (!isUsage(usage)) {
    onDamaged(`${file} is not an image usage record`);
    return emptyUsage();
  }

  return usage;
}

function isUsage(value: unknown): value is ImageUsage {
  const record = value as Partial<ImageUsage> | null;
  return (
    typeof record === 'object' &&
    record !== null &&
    record.version === 1 &&
    typeof record.images === 'object' &&
    record.images !== null &&
    Object.values(record.images).every(
      (entry) =>
        typeof entry === 'object' &&
        entry !== null &&
        typeof entry.firstSeen === 'number' &&
        (entry.lastUsed === undefined || typeof entry.lastUsed === 'number'),
    )
  );
}

export function writeUsage(file: string, usage: ImageUsage): Promise<void> {
  return writeJsonDurably(file, usage);
}

/**
 * Folds one look at the node into the record: images seen for the first time get a first-seen
 * time, images a container uses now get a last-used time, and images that are gone are dropped.
 */
export function recordSighting(
  usage: ImageUsage,
  imageIds: readonly string[],
  inUseIds: ReadonlySet<string>,
  now: number,
): ImageUsage {
  const images: ImageUsage['images'] = {};
  for (const id of imageIds) {
    const known = usage.images[id];
    const firstSeen = known?.firstSeen ?? now;
    const lastUsed = inUseIds.has(id) ? now : known?.lastUsed;
    images[id] = lastUsed === undefined ? { firstSeen } : { firstSeen, lastUsed };
  }

  return { version: 1, images };
}
