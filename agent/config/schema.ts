import path from 'node:path';
import { validate as validateCron } from 'node-cron';
import * as z from 'zod/mini';
import { parseSelector } from '../disks/selectors.js';

/**
 * The whole config, validated once before any step runs. Every rule here has a message that says
 * what is allowed; `load.ts` adds the key and the value received.
 *
 * zod/mini rather than zod's chained API: the same checks, at a twentieth of the bundle, which
 * keeps `ctrvol --version` close to a bare `node -e 0`.
 */

// An xfs label holds at most 12 bytes, an ext4 label 16 (mkfs.xfs -L, mke2fs -L).
export const labelLimits = { xfs: 12, ext4: 16 } as const;

// mkfs.xfs refuses filesystems smaller than 300 MB.
export const xfsMinimumBytes = 300 * 1000 * 1000;

// No trailing slash either: /var/lib/containerd/ and /var/lib/containerd would then be two mount
// points to every comparison with /proc/self/mountinfo.
const isNormalAbsolute = (value: string) =>
  path.isAbsolute(value) &&
  path.normalize(value) === value &&
  (value === '/' || !value.endsWith('/'));

// The kernel refuses a path of PATH_MAX (4096) bytes counting its final NUL, and any name in it
// longer than NAME_MAX (255): mkdir or mount would otherwise fail only after mkfs.
const pathMaxBytes = 4095;
const nameMaxBytes = 255;

// A unix socket's address holds 108 bytes with its final NUL (sun_path); a longer socket path
// cannot be connected to at all.
const socketMaxBytes = 107;

/**
 * Checks every path-like key makes before any other, aborting on failure so that its one message
 * is the one shown. A control character would end a line in the unit drop-ins that setup writes
 * (after mkfs and mount), and no file name of containerd's or the kubelet's holds one.
 */
const pathChecks = [
  z.refine<string>((value) => !/[\u0000-\u001f\u007f]/.test(value), {
    error: 'a path without control characters (\\x00-\\x1f, \\x7f)',
    abort: true,
  }),
  z.refine<string>(
    (value) =>
      Buffer.byteLength(value) <= pathMaxBytes &&
      value.split('/').every((name) => Buffer.byteLength(name) <= nameMaxBytes),
    {
      error: `a path of at most ${pathMaxBytes} bytes, with no name in it over ${nameMaxBytes}`,
      abort: true,
    },
  ),
];

/** The forms agent/disks/selectors.ts resolves; paths must sit under /dev. */
function isSelector(value: string): boolean {
  try {
    const selector = parseSelector(value);
    return selector.kind !== 'path' || (value.startsWith('/dev/') && isNormalAbsolute(value));
  } catch {
    return false;
  }
}

const absolutePath = z
  .string()
  .check(
    ...pathChecks,
    z.refine(isNormalAbsolute, { error: 'an absolute, normalised path without a trailing slash' }),
  );

/** A whole number in a range; z.int() would first report JavaScript's safe-integer limit. */
const wholeNumber = (minimum: number, maximum: number) =>
  z
    .number()
    .check(
      z.refine(Number.isInteger, { error: `a whole number from ${minimum} to ${maximum}` }),
      z.minimum(minimum),
      z.maximum(maximum),
    );

const mountOption = z.string().check(
  z.regex(/^[A-Za-z0-9_=.:/+-]+$/, {
    error: 'mount options without commas or spaces, one per list item',
  }),
  z.refine((value) => value !== 'ro', {
    error: 'options that leave the volume writable (containerd writes to it)',
  }),
);

const selectorText = z.string().check(
  ...pathChecks,
  z.refine(isSelector, {
    error:
      'a device path under /dev, a block-device mapping name (xvdb, /dev/sdf), ' +
      'an EBS volume id (vol-0123…) or "auto"',
  }),
);

const raidLevel = z.enum(['raid0', 'raid10']);

/**
 * A directory bound from the volume. Not under the mount point or above it (it would bind the
 * volume into itself), and never a system directory whose loss would stop the node booting.
 */
const bindMount = absolutePath.check(
  z.refine(
    (value) =>
      !['/', '/etc', '/usr', '/var', '/var/lib', '/boot', '/home'].includes(value) &&
      !/^\/(proc|sys|dev|run)(\/|$)/.test(value),
    { error: 'a data directory such as /var/lib/kubelet or /var/log/pods' },
  ),
);

// The three ways to name the storage; a config gives exactly one of them.
const sourceKeys = ['device', 'devices', 'instanceStore'] as const;

const volumeSchema = z
  .strictObject({
    device: z.optional(selectorText),
    /** Pooled into one md array of level volume.raid; any selector but "auto". */
    devices: z.optional(
      z
        .array(
          selectorText.check(
            z.refine((value) => value.trim() !== 'auto', {
              error: 'a device path, mapping name or volume id ("auto" names no single device)',
            }),
          ),
        )
        .check(z.minLength(2)),
    ),
    raid: z.optional(raidLevel),
    instanceStore: z.optional(z.enum(['raid0', 'raid10', 'single'])),
    /**
     * Serials that also count as instance-store disks, as a glob (* and ?), for machines that
     * cannot set the NVMe model string: qemu guests and other test rigs.
     */
    instanceStoreSerial: z.optional(
      z.string().check(
        z.regex(/^[A-Za-z0-9_.*?-]{1,40}$/, {
          error: 'a serial glob of letters, digits, "_", ".", "-", "*" and "?"',
        }),
      ),
    ),
    filesystem: z._default(z.enum(['xfs', 'ext4']), 'xfs'),
    label: z._default(
      z
        .string()
        .check(z.regex(/^[A-Za-z0-9_.-]+$/, { error: 'letters, digits, "_", "." and "-"' })),
      'ctrvol',
    ),
    mountPoint: z._default(
      absolutePath.check(z.refine((value) => value !== '/', { error: 'a directory other than /' })),
      '/var/lib/containerd',
    ),
    mountOptions: z._default(z.array(mountOption).check(z.minLength(1)), ['defaults', 'noatime']),
    preserve: z._default(z.boolean(), true),
    reclaimRootCopy: z._default(z.boolean(), false),
    waitSeconds: z._default(wholeNumber(0, 3600), 120),
    bindMounts: z._default(z.array(bindMount), []),
  })
  .check(
    z.superRefine((volume, context) => {
      const problem = (key: string, input: unknown, message: string) =>
        context.addIssue({ code: 'custom', path: [key], params: { input }, message });

      const given = sourceKeys.filter((key) => volume[key] !== undefined);
      if (given.length === 0) {
        problem(
          'device',
          undefined,
          'one of volume.device, volume.devices (with volume.raid) or volume.instanceStore',
        );
      }

      for (const key of given.slice(1)) {
        problem(key, volume[key], `nothing, since volume.${given[0]} is set: give only one`);
      }

      for (const [index, entry] of (volume.devices ?? []).entries()) {
        if (volume.devices?.indexOf(entry) !== index) {
          context.addIssue({
            code: 'custom',
            path: ['devices', index],
            params: { input: entry },
            message: 'a device not already listed',
          });
        }
      }

      if (volume.devices !== undefined && volume.raid === undefined) {
        problem('raid', undefined, '"raid0" | "raid10", which volume.devices needs');
      }

      if (volume.raid !== undefined && volume.devices === undefined) {
        problem('raid', volume.raid, 'nothing without volume.devices');
      }

      if (volume.instanceStoreSerial !== undefined && volume.instanceStore === undefined) {
        problem(
          'instanceStoreSerial',
          volume.instanceStoreSerial,
          'nothing without volume.instanceStore',
        );
      }

      const limit = labelLimits[volume.filesystem];
      if (Buffer.byteLength(volume.label) > limit) {
        problem('label', volume.label, `at most ${limit} characters for ${volume.filesystem}`);
      }

      for (const [index, directory] of volume.bindMounts.entries()) {
        const others = [volume.mountPoint, ...volume.bindMounts.filter((_, i) => i !== index)];
        const clash = others.find(
          (other) =>
            other === directory ||
            other.startsWith(`${directory}/`) ||
            directory.startsWith(`${other}/`),
        );
        if (clash !== undefined) {
          context.addIssue({
            code: 'custom',
            path: ['bindMounts', index],
            params: { input: directory },
            message:
              clash === volume.mountPoint
                ? `a directory outside volume.mountPoint (${volume.mountPoint}) and not above it`
                : `a directory neither equal to, inside nor above another entry (${clash})`,
          });
        }
      }
    }),
  );

const containerdDefaults = {
  socket: '/run/containerd/containerd.sock',
  config: '/etc/containerd/config.toml',
  sandboxImageArchive: '/etc/eks/pause.tar',
};

// The namespace is not configurable: k8s.io is the only one CRI reads.
const containerdSchema = z.strictObject({
  socket: z._default(
    absolutePath.check(
      z.refine((value) => Buffer.byteLength(value) <= socketMaxBytes, {
        error: `a socket path of at most ${socketMaxBytes} bytes`,
      }),
    ),
    containerdDefaults.socket,
  ),
  config: z._default(absolutePath, containerdDefaults.config),
  sandboxImageArchive: z._default(absolutePath, containerdDefaults.sandboxImageArchive),
});

const percent = z.number().check(z.minimum(1), z.maximum(99));

// highPercent sits below the kubelet's image GC (85 %) and its imagefs eviction (15 % free), so
// that ctrvol frees space before the kubelet starts evicting pods.
const pruneDefaults = {
  enabled: true,
  highPercent: 80,
  lowPercent: 70,
  minAgeSeconds: 300,
  keep: [] as string[],
};

const pruneSchema = z
  .strictObject({
    enabled: z._default(z.boolean(), pruneDefaults.enabled),
    highPercent: z._default(percent, pruneDefaults.highPercent),
    lowPercent: z._default(percent, pruneDefaults.lowPercent),
    minAgeSeconds: z._default(wholeNumber(0, 31_536_000), pruneDefaults.minAgeSeconds),
    keep: z._default(z.array(z.string().check(z.minLength(1))), pruneDefaults.keep),
  })
  .check(
    z.superRefine((prune, context) => {
      if (prune.lowPercent >= prune.highPercent) {
        context.addIssue({
          code: 'custom',
          path: ['lowPercent'],
          params: { input: prune.lowPercent },
          message: `a value below prune.highPercent (${prune.highPercent})`,
        });
      }
    }),
  );

const monitorDefaults = {
  schedule: '*/5 * * * *',
  warnPercent: { root: 80, volume: 90 },
  metrics: { namespace: 'ctrvol', dimensions: {} as Record<string, string> },
};

// node-cron's own parser decides what a schedule may say, so the check and the daemon agree.
const cronExpression = z.string().check(
  z.refine((value) => validateCron(value), {
    error: 'a cron expression of 5 or 6 fields, such as "*/5 * * * *"',
  }),
);

const metricsSchema = z.strictObject({
  /** node_exporter textfile collector file; off when absent. */
  textfile: z.optional(
    absolutePath.check(
      z.refine((value) => value.endsWith('.prom'), { error: 'a path ending in .prom' }),
    ),
  ),
  /** CloudWatch Embedded Metric Format lines are appended here; off when absent. */
  emfFile: z.optional(absolutePath),
  namespace: z._default(
    z.string().check(z.minLength(1), z.maxLength(255)),
    monitorDefaults.metrics.namespace,
  ),
  dimensions: z._default(
    z.record(
      z.string().check(
        z.regex(/^[A-Za-z0-9_.:-]{1,250}$/, {
          error: 'dimension names of letters, digits, "_", ".", ":" and "-"',
        }),
      ),
      z.string().check(z.minLength(1), z.maxLength(1024)),
    ),
    monitorDefaults.metrics.dimensions,
  ),
});

const monitorSchema = z.strictObject({
  schedule: z._default(cronExpression, monitorDefaults.schedule),
  warnPercent: z._default(
    z.strictObject({
      root: z._default(percent, monitorDefaults.warnPercent.root),
      volume: z._default(percent, monitorDefaults.warnPercent.volume),
    }),
    monitorDefaults.warnPercent,
  ),
  metrics: z._default(metricsSchema, monitorDefaults.metrics),
});

export const configSchema = z.strictObject({
  volume: volumeSchema,
  onFailure: z._default(z.enum(['block', 'rootDisk']), 'block'),
  containerd: z._default(containerdSchema, containerdDefaults),
  prune: z._default(pruneSchema, pruneDefaults),
  monitor: z._default(monitorSchema, monitorDefaults),
});

export type Config = z.infer<typeof configSchema>;
export type VolumeConfig = Config['volume'];
export type Filesystem = VolumeConfig['filesystem'];
