import type { ImageUsage } from './usage.js';
import { globToRegExp } from '../text.js';

/** An image as CRI lists it. */
export interface NodeImage {
  id: string;
  repoTags: string[];
  repoDigests: string[];
  sizeBytes: number;
  /** CRI's own pinned flag; containerd before 1.6.22/1.7.3 always says false. */
  pinned: boolean;
}

/** A container in any state, with the two ways CRI names its image. */
export interface NodeContainer {
  id: string;
  /** What the container was created from: an image id, or a name. */
  image: string;
  /** The image id (or repo digest) the runtime resolved it to. */
  imageRef: string;
}

export interface PruneFacts {
  images: NodeImage[];
  containers: NodeContainer[];
  /** Names (tags, digests, ids) of images labelled io.cri-containerd.pinned=pinned. */
  pinnedNames: ReadonlySet<string>;
  /** The sandbox image, normalised the way containerd normalises names. */
  sandboxImage: string;
  usage: ImageUsage;
  keep: readonly string[];
  minAgeSeconds: number;
  now: number;
}

export interface PruneCandidate {
  image: NodeImage;
  /** Last time ctrvol saw a container use it, or when it first saw it. */
  lastUsed: number;
}

export interface ProtectedImage {
  image: NodeImage;
  reasons: string[];
}

export interface PrunePlan {
  /** Least recently used first; among equals, the larger first. */
  candidates: PruneCandidate[];
  protected: ProtectedImage[];
}

export function getImageNames(image: NodeImage): string[] {
  return [image.id, ...image.repoTags, ...image.repoDigests];
}

/** The ids of images that some container, running or exited, was made from. */
export function getImagesInUse(images: readonly NodeImage[], containers: readonly NodeContainer[]) {
  const refs = new Set(containers.flatMap((container) => [container.image, container.imageRef]));
  return new Set(
    images
      .filter((image) => getImageNames(image).some((name) => refs.has(name)))
      .map((image) => image.id),
  );
}

/** Why an image must stay, or nothing when it may go. */
export function planPrune(facts: PruneFacts): PrunePlan {
  const inUse = getImagesInUse(facts.images, facts.containers);
  const keep = facts.keep.map(globToRegExp);
  const candidates: PruneCandidate[] = [];
  const kept: ProtectedImage[] = [];

  for (const image of facts.images) {
    const names = getImageNames(image);
    const seen = facts.usage.images[image.id];
    const firstSeen = seen?.firstSeen ?? facts.now;
    const reasons: string[] = [];
    if (inUse.has(image.id)) {
      reasons.push('in use by a container');
    }

    if (names.includes(facts.sandboxImage)) {
      reasons.push('the sandbox image');
    }

    if (image.pinned || names.some((name) => facts.pinnedNames.has(name))) {
      reasons.push('pinned');
    }

    if (facts.now - firstSeen < facts.minAgeSeconds * 1000) {
      reasons.push(`younger than ${facts.minAgeSeconds} s`);
    }

    const pattern = facts.keep.find((_, index) => names.some((name) => keep[index]?.test(name)));
    if (pattern !== undefined) {
      reasons.push(`matches keep pattern "${pattern}"`);
    }

    if (reasons.length > 0) {
      kept.push({ image, reasons });
    } else {
      candidates.push({ image, lastUsed: seen?.lastUsed ?? firstSeen });
    }
  }

  candidates.sort((a, b) => a.lastUsed - b.lastUsed || b.image.sizeBytes - a.image.sizeBytes);
  return { candidates, protected: kept };
}
