/**
 * Image names the way containerd's CRI plugin normalises them (the docker reference rules it
 * applies to `sandbox_image` and to every CRI image argument): a bare name gets `docker.io/`
 * and, for a single path component, `library/`; a name with neither tag nor digest gets
 * `:latest`; a name with both a tag and a digest keeps only the digest. Comparing names from
 * the config with names from ListImages is only sound after this.
 */

const DEFAULT_DOMAIN = 'docker.io';
const LEGACY_DEFAULT_DOMAIN = 'index.docker.io';
const OFFICIAL_REPO_PREFIX = 'library/';
const NAME_TOTAL_LENGTH_MAX = 255;

// The grammar of github.com/distribution/reference, written out as regular expressions.
const alphanumeric = '[a-z0-9]+';
const separator = '(?:[._]|__|[-]+)';
const pathComponent = `${alphanumeric}(?:${separator}${alphanumeric})*`;
const domainComponent = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const domainName = `${domainComponent}(?:\\.${domainComponent})*`;
const ipv6 = '\\[(?:[a-fA-F0-9:]+)\\]';
const domain = `(?:${domainName}|${ipv6})(?::[0-9]+)?`;
const tag = '[\\w][\\w.-]{0,127}';
const digest = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';
const REFERENCE = new RegExp(
  `^((?:${domain}/)?${pathComponent}(?:/${pathComponent})*)(?::(${tag}))?(?:@(${digest}))?$`,
);
const IMAGE_ID = /^sha256:[a-f0-9]{64}$/;
const HEX64 = /^[a-f0-9]{64}$/;

export interface ImageRef {
  /** Domain and path, e.g. `docker.io/library/pause`. */
  name: string;
  domain: string;
  path: string;
  tag: string | undefined;
  digest: string | undefined;
}

export class ImageRefError extends Error {
  constructor(ref: string, why: string) {
    super(`invalid image reference "${ref}": ${why}`);
    this.name = 'ImageRefError';
  }
}

// Go's reference package decides whether the first component is a registry by whether it looks
// like a host: a dot, a port, `localhost`, or (since distribution/reference 0.5) capitals.
function splitDomain(ref: string): { domain: string; remainder: string } {
  const slash = ref.indexOf('/');
  const first = slash < 0 ? '' : ref.slice(0, slash);
  let domain: string;
  let remainder: string;
  if (
    slash < 0 ||
    (!/[.:]/.test(first) && first !== 'localhost' && first.toLowerCase() === first)
  ) {
    domain = DEFAULT_DOMAIN;
    remainder = ref;
  } else {
    domain = first;
    remainder = ref.slice(slash + 1);
  }
  if (domain === LEGACY_DEFAULT_DOMAIN) domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !remainder.includes('/')) {
    remainder = OFFICIAL_REPO_PREFIX + remainder;
  }
  return { domain, remainder };
}

/** Parses a reference into its parts, filling in the defaults docker's rules give it. */
export function parseImageRef(ref: string): ImageRef {
  if (ref === '') throw new ImageRefError(ref, 'empty');
  if (HEX64.test(ref)) {
    throw new ImageRefError(ref, 'a 64-character hex string is an image ID, not a name');
  }
  const { domain, remainder } = splitDomain(ref);
  const colon = remainder.indexOf(':');
  const remoteName = colon < 0 ? remainder : remainder.slice(0, colon);
  if (remoteName.toLowerCase() !== remoteName) {
    throw new ImageRefError(ref, 'repository name must be lowercase');
  }
  const match = REFERENCE.exec(`${domain}/${remainder}`);
  if (match === null)
    throw new ImageRefError(ref, 'not of the form [host[:port]/]path[:tag][@digest]');
  const name = match[1] ?? '';
  if (name.length > NAME_TOTAL_LENGTH_MAX) {
    throw new ImageRefError(ref, `name longer than ${NAME_TOTAL_LENGTH_MAX} characters`);
  }
  return {
    name,
    domain,
    path: name.slice(domain.length + 1),
    tag: match[2],
    digest: match[3],
  };
}

/**
 * The name containerd will look for: `pause` → `docker.io/library/pause:latest`,
 * `localhost/kubernetes/pause` → `localhost/kubernetes/pause:latest`,
 * `repo:tag@sha256:…` → `repo@sha256:…`. An image ID (`sha256:` and 64 hex digits) is
 * returned unchanged, as containerd resolves it by ID. Throws ImageRefError when containerd
 * would refuse the name too.
 */
export function normalizeImageRef(ref: string): string {
  if (IMAGE_ID.test(ref)) return ref;
  const parsed = parseImageRef(ref);
  if (parsed.digest !== undefined) return `${parsed.name}@${parsed.digest}`;
  return `${parsed.name}:${parsed.tag ?? 'latest'}`;
}
