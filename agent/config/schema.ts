import path from 'node:path';
import * as z from 'zod/mini';

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

const isNormalAbsolute = (value: string) =>
  path.isAbsolute(value) && path.normalize(value) === value;

const absolutePath = z
  .string()
  .check(z.refine(isNormalAbsolute, { error: 'an absolute, normalised path' }));

const mountOption = z.string().check(
  z.regex(/^[A-Za-z0-9_=.:/+-]+$/, {
    error: 'mount options without commas or spaces, one per list item',
  }),
  z.refine((value) => value !== 'ro', {
    error: 'options that leave the volume writable (containerd writes to it)',
  }),
);

const volumeSchema = z
  .strictObject({
    device: z.string().check(
      z.refine((value) => value.startsWith('/dev/') && isNormalAbsolute(value), {
        error: 'a block device path under /dev',
      }),
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
    waitSeconds: z._default(z.int().check(z.minimum(0), z.maximum(3600)), 120),
  })
  .check(
    z.superRefine((volume, context) => {
      const limit = labelLimits[volume.filesystem];
      if (Buffer.byteLength(volume.label) > limit) {
        context.addIssue({
          code: 'custom',
          path: ['label'],
          input: volume.label,
          message: `at most ${limit} characters for ${volume.filesystem}`,
        });
      }
    }),
  );

const defaultSocket = '/run/containerd/containerd.sock';

const containerdSchema = z.strictObject({
  socket: z._default(absolutePath, defaultSocket),
});

export const configSchema = z.strictObject({
  volume: volumeSchema,
  onFailure: z._default(z.enum(['block', 'rootDisk']), 'block'),
  containerd: z._default(containerdSchema, { socket: defaultSocket }),
});

export type Config = z.infer<typeof configSchema>;
export type VolumeConfig = Config['volume'];
export type Filesystem = VolumeConfig['filesystem'];
