import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import type { CriClient } from '../cri/client.js';
import { EnvironmentError, isEnvironmentError } from '../errors.js';
import { ImageRefError, normalizeImageRef } from './image-ref.js';

/**
 * Which image containerd builds pod sandboxes from, and where its store is. containerd before
 * 1.6.22 / 1.7.3 pins nothing, so a pruner has to protect the sandbox image by name, and a
 * missing sandbox image is the failure ctrvol exists to prevent (amazon-eks-ami #2122).
 *
 * The running containerd is asked first (its CRI Status, verbose, carries its effective
 * config); otherwise the config file is read as containerd would read it.
 */

export const DEFAULT_CONFIG_PATH = '/etc/containerd/config.toml';
export const DEFAULT_ROOT = '/var/lib/containerd';

/** Where a value came from: the running containerd, its config files, or its built-in default. */
export type SettingSource = 'cri-status' | 'config' | 'default';

export interface ContainerdConfigView {
  /** The files read, in the order containerd merges them (later ones win). */
  files: string[];
  /** False when the main file does not exist, which containerd accepts as "all defaults". */
  exists: boolean;
  /** The main file's `version`; containerd reads a file without one as version 1. */
  version: number;
  /** As configured, before normalisation; undefined when the files leave it to the default. */
  sandboxImage: string | undefined;
  /** The file the sandbox image was taken from. */
  sandboxImageFile: string | undefined;
  root: string | undefined;
}

export interface ReadConfigOptions {
  /**
   * The running containerd's version (`1.7.24`, `v2.0.0`, `1.6.20~ds1`). It decides how
   * drop-in files merge (see mergesWholeSections); without it the main file's version decides.
   */
  containerdVersion?: string;
}

type Table = Record<string, unknown>;

function isTable(value: unknown): value is Table {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function nonEmptyString(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** Major and minor of a containerd version string, or undefined when it does not look like one. */
export function parseContainerdVersion(
  version: string | undefined,
): { major: number; minor: number } | undefined {
  const match = /^v?(\d+)\.(\d+)/.exec(version ?? '');
  return match === null ? undefined : { major: Number(match[1]), minor: Number(match[2]) };
}

/**
 * containerd's built-in sandbox image. It changed with containerd releases, not with config
 * versions: 1.6 uses pause:3.6, 1.7 pause:3.8, 2.x pause:3.10. When the containerd version is
 * unknown, a version 3 config means 2.x and anything else is taken as 1.7, which is what AL2023
 * EKS nodes ship with a version 2 config.
 */
export function defaultSandboxImage(
  options: { containerdVersion?: string; configVersion?: number } = {},
): string {
  const version = parseContainerdVersion(options.containerdVersion);
  if (version === undefined) {
    return (options.configVersion ?? 2) >= 3
      ? 'registry.k8s.io/pause:3.10'
      : 'registry.k8s.io/pause:3.8';
  }
  if (version.major >= 2) return 'registry.k8s.io/pause:3.10';
  if (version.major === 1 && version.minor >= 7) return 'registry.k8s.io/pause:3.8';
  return 'registry.k8s.io/pause:3.6';
}

/**
 * containerd 1.x replaces a plugin's whole section with a drop-in's section of the same name, so
 * a drop-in that only sets `[plugins."io.containerd.grpc.v1.cri".containerd] snapshotter` puts
 * sandbox_image back to its default. containerd 2.x merges sections key by key instead.
 */
function mergesWholeSections(containerdVersion: string | undefined, rootVersion: number): boolean {
  const version = parseContainerdVersion(containerdVersion);
  return version === undefined ? rootVersion < 3 : version.major < 2;
}

/**
 * The section holding the sandbox image in one file, read by that file's own version (2.x
 * migrates an older drop-in to its root's version before merging, which comes to the same).
 * Undefined when the file has no such section; `image` is undefined when the section does not
 * set it.
 */
function sandboxSetting(doc: Table, version: number): { image: string | undefined } | undefined {
  const plugins = isTable(doc.plugins) ? doc.plugins : {};
  if (version >= 3) {
    const images = plugins['io.containerd.cri.v1.images'];
    if (!isTable(images)) return undefined;
    const pinned = isTable(images.pinned_images) ? images.pinned_images : {};
    return { image: nonEmptyString(pinned.sandbox) };
  }
  // Version 1 named plugins by their short IDs; containerd maps `cri` to the full URI.
  const cri = plugins['io.containerd.grpc.v1.cri'] ?? (version < 2 ? plugins.cri : undefined);
  if (!isTable(cri)) return undefined;
  return { image: nonEmptyString(cri.sandbox_image) };
}

const GLOB_META = /[*?[\\]/;

// Go's filepath.Match on one path element: `*` and `?` never match a slash, `[...]` is a class
// (with `^` for negation), and a backslash escapes. Unlike a shell glob, `*` matches dot files.
function globElementToRegExp(element: string, pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < element.length; i++) {
    const c = element[i] ?? '';
    if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else if (c === '\\') {
      i += 1;
      if (i >= element.length) throw badPattern(pattern);
      out += escapeRegExp(element[i] ?? '');
    } else if (c === '[') {
      const end = element.indexOf(']', i + 2);
      if (end < 0) throw badPattern(pattern);
      let body = element.slice(i + 1, end);
      if (body.startsWith('^')) body = `^${body.slice(1).replace(/[\]\\]/g, '\\$&')}`;
      else body = body.replace(/[\]\\^]/g, '\\$&');
      out += `[${body}]`;
      i = end;
    } else out += escapeRegExp(c);
  }
  return new RegExp(`^${out}$`);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

function badPattern(pattern: string): EnvironmentError {
  return new EnvironmentError(`containerd config import "${pattern}" is not a valid glob`);
}

/** Go's filepath.Glob: lexical order per directory; an unreadable directory matches nothing. */
async function glob(pattern: string): Promise<string[]> {
  if (!GLOB_META.test(pattern)) {
    return (await stat(pattern).then(
      () => true,
      () => false,
    ))
      ? [pattern]
      : [];
  }
  const dir = path.dirname(pattern);
  const matcher = globElementToRegExp(path.basename(pattern), pattern);
  const dirs = GLOB_META.test(dir) ? await glob(dir) : [dir];
  const matches: string[] = [];
  for (const parent of dirs) {
    const names = await readdir(parent).catch((): string[] => []);
    for (const name of names.sort()) {
      if (matcher.test(name)) matches.push(path.join(parent, name));
    }
  }
  return matches;
}

// Relative imports are taken from the importing file's directory. containerd 2.x does this for
// globs too; 1.x globbed relative patterns from its working directory (/ under systemd), which
// nobody relies on: nodeadm and the EKS AMI write absolute `/etc/containerd/config.d/*.toml`.
async function resolveImports(parent: string, imports: unknown): Promise<string[]> {
  if (imports === undefined) return [];
  if (!Array.isArray(imports) || !imports.every((item) => typeof item === 'string')) {
    throw new EnvironmentError(`containerd config ${parent}: imports must be a list of paths`);
  }
  const resolved: string[] = [];
  for (const entry of imports as string[]) {
    const full = path.resolve(path.dirname(parent), entry);
    resolved.push(...(entry.includes('*') ? await glob(full) : [full]));
  }
  return resolved;
}

async function loadToml(file: string): Promise<Table | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new EnvironmentError(
      `cannot read containerd config ${file}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  try {
    return parseToml(text) as Table;
  } catch (error) {
    const where =
      error instanceof TomlError ? ` at line ${error.line}, column ${error.column}` : '';
    const why = (error as Error).message.split('\n')[0] ?? '';
    throw new EnvironmentError(`cannot parse containerd config ${file}${where}: ${why}`, {
      cause: error,
      hint: 'containerd would refuse this file too',
    });
  }
}

/**
 * Reads containerd's config the way containerd does: the main file, then its imports (each file
 * once, breadth first, later files overriding earlier ones). A missing main file means all
 * defaults; a missing import named without a glob is an error, as containerd will not start.
 */
export async function readContainerdConfig(
  configPath: string = DEFAULT_CONFIG_PATH,
  options: ReadConfigOptions = {},
): Promise<ContainerdConfigView> {
  const main = path.resolve(configPath);
  const view: ContainerdConfigView = {
    files: [],
    exists: false,
    version: 1,
    sandboxImage: undefined,
    sandboxImageFile: undefined,
    root: undefined,
  };
  const pending = [main];
  const loaded = new Set<string>();
  let wholeSections = true;
  while (pending.length > 0) {
    const file = pending.shift() ?? '';
    if (loaded.has(file)) continue;
    const doc = await loadToml(file);
    if (doc === undefined) {
      if (file === main) return view;
      throw new EnvironmentError(
        `containerd config ${main} imports ${file}, which does not exist`,
        {
          hint: 'containerd would refuse to start',
        },
      );
    }
    loaded.add(file);
    view.files.push(file);
    const version = typeof doc.version === 'number' && doc.version > 0 ? doc.version : 1;
    if (file === main) {
      view.exists = true;
      view.version = version;
      wholeSections = mergesWholeSections(options.containerdVersion, version);
    }
    const setting = sandboxSetting(doc, version);
    if (setting !== undefined && (setting.image !== undefined || wholeSections)) {
      view.sandboxImage = setting.image;
      view.sandboxImageFile = setting.image === undefined ? undefined : file;
    }
    view.root = nonEmptyString(doc.root) ?? view.root;
    pending.push(...(await resolveImports(file, doc.imports)));
  }
  return view;
}

/**
 * The sandbox image and root from CRI Status's verbose `config` entry. containerd 1.6 and 1.7
 * marshal the CRI plugin's whole config there (`sandboxImage`, `containerdRootDir`). containerd
 * 2.x marshals only the runtime half, without the images plugin's `pinned_images`; both
 * spellings of that are looked for in case a release adds it.
 */
export function settingsFromStatusInfo(info: Record<string, string>): {
  sandboxImage: string | undefined;
  root: string | undefined;
} {
  let config: unknown;
  try {
    config = JSON.parse(info.config ?? 'null');
  } catch {
    return { sandboxImage: undefined, root: undefined };
  }
  if (!isTable(config)) return { sandboxImage: undefined, root: undefined };
  const pinned = [config.pinned_images, config.pinnedImages].find(isTable);
  return {
    sandboxImage: nonEmptyString(config.sandboxImage) ?? nonEmptyString(pinned?.sandbox),
    root: nonEmptyString(config.containerdRootDir),
  };
}

export interface SandboxImageInfo {
  /** Normalised as containerd looks it up, e.g. `localhost/kubernetes/pause:latest`. */
  name: string;
  /** As configured (or the default), before normalisation. */
  configured: string;
  source: SettingSource;
  /** containerd's `root`, so that a caller can warn when it is not the volume's mount point. */
  root: string;
  rootSource: SettingSource;
  /** Config files read, when the files were needed. */
  configFiles: string[];
  /** Why the running containerd could not say, when a client was given and it could not. */
  statusError: string | undefined;
}

export interface FindSandboxImageOptions {
  /** A client on the running containerd; without one only the config files are read. */
  client?: CriClient;
  configPath?: string;
  /** Taken from the client's Version call when a client is given and this is not. */
  containerdVersion?: string;
}

function normalizeOrExplain(image: string, source: string): string {
  try {
    return normalizeImageRef(image);
  } catch (error) {
    if (!(error instanceof ImageRefError)) throw error;
    throw new EnvironmentError(`containerd's sandbox image from ${source}: ${error.message}`, {
      cause: error,
    });
  }
}

/**
 * Finds the sandbox image: from the running containerd when a client is given and it answers,
 * otherwise from the config files, otherwise containerd's default for its version.
 */
export async function findSandboxImage(
  options: FindSandboxImageOptions = {},
): Promise<SandboxImageInfo> {
  let fromStatus: ReturnType<typeof settingsFromStatusInfo> = {
    sandboxImage: undefined,
    root: undefined,
  };
  let statusError: string | undefined;
  let containerdVersion = options.containerdVersion;
  if (options.client !== undefined) {
    try {
      const status = await options.client.status({ verbose: true });
      fromStatus = settingsFromStatusInfo(status.info);
      // Only needed to pick containerd's default and its merge rules for the files.
      if (fromStatus.sandboxImage === undefined) {
        containerdVersion ??= (await options.client.version()).runtimeVersion;
      }
    } catch (error) {
      // The config files still say what a restarted containerd will use.
      if (!isEnvironmentError(error)) throw error;
      statusError = error.message;
    }
  }

  if (fromStatus.sandboxImage !== undefined && fromStatus.root !== undefined) {
    return {
      name: normalizeOrExplain(fromStatus.sandboxImage, 'CRI Status'),
      configured: fromStatus.sandboxImage,
      source: 'cri-status',
      root: fromStatus.root,
      rootSource: 'cri-status',
      configFiles: [],
      statusError,
    };
  }

  const config = await readContainerdConfig(options.configPath ?? DEFAULT_CONFIG_PATH, {
    containerdVersion,
  });
  let configured: string;
  let source: SettingSource;
  if (fromStatus.sandboxImage !== undefined) {
    configured = fromStatus.sandboxImage;
    source = 'cri-status';
  } else if (config.sandboxImage !== undefined) {
    configured = config.sandboxImage;
    source = 'config';
  } else {
    configured = defaultSandboxImage({ containerdVersion, configVersion: config.version });
    source = 'default';
  }
  const rootSource: SettingSource =
    fromStatus.root !== undefined ? 'cri-status' : config.root !== undefined ? 'config' : 'default';
  return {
    name: normalizeOrExplain(
      configured,
      source === 'config' ? (config.sandboxImageFile ?? 'config') : source,
    ),
    configured,
    source,
    root: fromStatus.root ?? config.root ?? DEFAULT_ROOT,
    rootSource,
    configFiles: config.files,
    statusError,
  };
}
