import path from 'node:path';
import { z } from 'zod';

/**
 * The whole config, validated once before any step runs. Every rule here has a message that says
 * what is allowed; `load.ts` adds the key and the value received.
 */

// An xfs label holds at most 12 bytes, an ext4 label 16 (mkfs.xfs -L, mke2fs -L).
export const labelLimits = { xfs: 12, ext4: 16 } as const;

// mkfs.xfs refuses filesystems smaller than 300 MB.
export const xfsMinimumBytes = 300 * 1000 * 1000;

const absolutePath = z
  .string()
  .refine((value) => path.isAbsolute(value) && path.normalize(value) === value, {
    error: 'an absolute, normalised path',
  });

const mountOption = z
  .string()
  .regex(/^[A-Za-z0-9_=.:/+-]+$/, {
    error: 'mount options without commas or spaces, one per list item',
  })
  .refine((value) => value !== 'ro', {
    error: 'options that leave the volume writable (containerd writes to it)',
  });

const volumeSchema = z
  .strictObject({
    device: z
      .string()
      .refine((value) => value.startsWith('/dev/') && path.normalize(value) === value, {
        error: 'a block device path under /dev',
      }),
    filesystem: z.enum(['xfs', 'ext4']).default('xfs'),
    label: z
      .string()
      .regex(/^[A-Za-z0-9_.-]+$/, { error: 'letters, digits, "_", "." and "-"' })
      .default('ctrvol'),
    mountPoint: absolutePath
      .refine((value) => value !== '/', { error: 'a directory other than /' })
      .default('/var/lib/containerd'),
    mountOptions: z.array(mountOption).min(1).default(['defaults', 'noatime']),
    preserve: z.boolean().default(true),
    reclaimRootCopy: z.boolean().default(false),
    waitSeconds: z.int().min(0).max(3600).default(120),
  })
  .superRefine((volume, context) => {
    const limit = labelLimits[volume.filesystem];
    if (Buffer.byteLength(volume.label) > limit) {
      context.addIssue({
        code: 'custom',
        path: ['label'],
        input: volume.label,
        message: `at most ${limit} characters for ${volume.filesystem}`,
      });
    }
  });

const containerdSchema = z.strictObject({
  socket: absolutePath.default('/run/containerd/containerd.sock'),
});

export const configSchema = z.strictObject({
  volume: volumeSchema,
  onFailure: z.enum(['block', 'rootDisk']).default('block'),
  containerd: containerdSchema.default({ socket: '/run/containerd/containerd.sock' }),
});

export type Config = z.infer<typeof configSchema>;
export type VolumeConfig = Config['volume'];
export type Filesystem = VolumeConfig['filesystem'];
