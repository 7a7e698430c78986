import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import { listImages, SANDBOX_IMAGE, startContainerd } from '../helpers/containerd.js';
import { seedAmiStore } from '../helpers/store.js';
import { makeRig, mountedAt } from './rig.js';

describe('the AMI store carried onto the volume', () => {
  for (const filesystem of ['xfs', 'ext4'] as const) {
    test(`keeps the pinned pause image complete and pinned for containerd on ${filesystem}`, async (t) => {
      const rig = await makeRig(t, { filesystem });
      // As an AL2023 EKS AMI has it: the pause image imported into k8s.io, labelled pinned, and
      // a few more cached images, unpacked into overlayfs snapshots with whiteouts and opaque dirs.
      const seeded = await seedAmiStore(rig.mountPoint, { extraBytes: 8 << 20, fileCount: 300 });

      const result = await rig.setup();

      assert.equal(result.exitCode, 0, result.stderr);
      assert.equal(await mountedAt(rig.mountPoint), rig.device.path);
      const containerd = await startContainerd({
        root: rig.mountPoint,
        state: path.join(rig.dir, 'state'),
        dir: path.join(rig.dir, 'ctrd'),
      });
      rig.defer(() => containerd.stop());
      const images = await listImages(containerd);
      const pause = images.find((image) => image.name === SANDBOX_IMAGE);
      assert.ok(
        pause,
        `pause image missing; containerd lists ${images.map((i) => i.name).join(', ')}`,
      );
      assert.equal(pause.status, 'complete', pause.statusDetail);
      assert.equal(pause.labels['io.cri-containerd.pinned'], 'pinned');
      for (const name of seeded.images) {
        const image = images.find((candidate) => candidate.name === name);
        assert.equal(image?.status, 'complete', `${name}: ${image?.statusDetail ?? 'missing'}`);
      }
      // The snapshots must still mount: an overlay over them is what a container would get.
      const snapshots = await containerd.ctr(['-n', 'k8s.io', 'snapshots', 'ls']);
      assert.match(snapshots, /Committed/);
    });
  }
});
