/**
 * Builds the OCI archives that the base image caches in containerd's `k8s.io` namespace, as an
 * AL2023 EKS AMI build caches its sandbox image:
 *
 *   node --import tsx scripts/vm/bake-images.ts --pause BIN --busybox BIN --out DIR
 *
 * - `DIR/pause.tar`: `localhost/kubernetes/pause:latest`, one static binary, `/pause`. The AMI
 *   build pulls the real pause image; the guest has no network, so it is built here instead.
 * - `DIR/app.tar`: `localhost/e2e/app:1`, busybox-static, the workload image of the scenarios'
 *   containers (an image the AMI happens to hold besides the pause image, not pinned).
 *
 * The archives are byte-for-byte reproducible for equal binaries (fixed timestamps), so the
 * base image's cache key can name the binaries rather than the archives.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { buildImageArchive } from '../../test/helpers/oci-image.js';

export const PAUSE_IMAGE = 'localhost/kubernetes/pause:latest';
export const APP_IMAGE = 'localhost/e2e/app:1';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      pause: { type: 'string' },
      busybox: { type: 'string' },
      out: { type: 'string' },
    },
  });
  if (!values.pause || !values.busybox || !values.out) {
    throw new Error('usage: bake-images.ts --pause BIN --busybox BIN --out DIR');
  }
  const pause = await buildImageArchive({
    name: PAUSE_IMAGE,
    files: [{ path: 'pause', content: await readFile(values.pause), mode: 0o755 }],
    entrypoint: ['/pause'],
    out: path.join(values.out, 'pause.tar'),
  });
  // busybox picks its applet from argv[0], or from argv[1] when called as busybox: the
  // entrypoint names the applet, so the image needs no applet symlinks.
  const app = await buildImageArchive({
    name: APP_IMAGE,
    files: [{ path: 'bin/busybox', content: await readFile(values.busybox), mode: 0o755 }],
    entrypoint: ['/bin/busybox', 'sleep', '3600'],
    out: path.join(values.out, 'app.tar'),
  });
  for (const image of [pause, app]) {
    console.log(`${image.name} ${image.manifestDigest} ${image.archivePath}`);
  }
}

await main();
