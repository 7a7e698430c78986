import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertPauseImagePinned, assertPodRan, podReport, vmTimeout } from './checks.js';
import {
  APP_IMAGE,
  bakedConfig,
  describeTimeline,
  diagnoseLines,
  parseImages,
  runScenario,
  SANDBOX_IMAGE,
} from './harness.js';

const EXITS_IMAGE = 'localhost/e2e/exits:1';
const APP_ALIAS = 'localhost/e2e/app-alias:1';
const UNUSED = ['localhost/e2e/unused-a:1', 'localhost/e2e/unused-a:2', 'localhost/e2e/unused-b:1'];
const KEPT = [APP_IMAGE, APP_ALIAS, EXITS_IMAGE, SANDBOX_IMAGE];

// Every image is new to ctrvol here: without minAgeSeconds 0 all of them would be too young.
// The monitor's own pruning is off, so that only the manual prune removes anything.
const pruneConfig = `${bakedConfig}prune:
  enabled: false
  minAgeSeconds: 0
`;

const scenario6 =
  'ctrvol prune on a running node removes only unused images, keeping the images of ' +
  'running and exited containers and the sandbox image';

test(scenario6, { timeout: vmTimeout(1) }, async (t) => {
  const result = await runScenario(
    { id: 'prune', guestScript: 'prune.sh', boots: 1, bakeConfig: pruneConfig },
    (line) => t.diagnostic(line),
  );
  const [boot] = result.boots;
  assert.ok(boot);

  for (const name of ['exits', 'unused-a', 'unused-b']) {
    assert.equal(boot.rc(`import-${name}.txt`), 0, boot.text(`import-${name}.txt`));
  }

  // One pod running, one whose container ran and exited, both kept.
  const running = assertPodRan(boot, 'running');
  const exited = podReport(boot, 'exited');
  assert.equal(exited.ok, true, `the exited pod: ${JSON.stringify(exited)}`);
  assert.equal(exited.containerState, 'CONTAINER_EXITED');
  assert.equal(exited.sandboxState, 'SANDBOX_READY');

  const before = parseImages(boot.text('before.images.txt')).map((i) => i.ref);
  for (const ref of [...KEPT, ...UNUSED]) {
    assert.ok(before.includes(ref), `${ref} is not there before the prune:\n${before.join('\n')}`);
  }

  diagnoseLines((l) => t.diagnostic(l), 'ctrvol prune --dry-run:', boot.text('prune-dry-run.txt'));
  const output = boot.text('prune.txt');
  diagnoseLines((l) => t.diagnostic(l), 'ctrvol prune --target-percent 1:', output);
  assert.equal(boot.rc('prune.txt'), 1, 'the 1 % target cannot be reached: exit 1');
  assert.match(output, /removed 2 image\(s\)/);
  assert.match(output, /the target of 1% cannot be reached/);
  // An image is named by its first tag: the app image may show as its alias.
  const protectedPart = output.slice(output.indexOf('the rest is protected:'));
  assert.match(protectedPart, new RegExp(`${SANDBOX_IMAGE} \\(the sandbox image, pinned\\)`));
  assert.match(protectedPart, new RegExp(`${EXITS_IMAGE} \\(in use by a container\\)`));
  assert.match(protectedPart, /localhost\/e2e\/app(-alias)?:1 \(in use by a container\)/);

  const after = parseImages(boot.text('after.images.txt')).map((i) => i.ref);
  for (const ref of KEPT) {
    assert.ok(after.includes(ref), `prune removed ${ref}:\n${after.join('\n')}`);
  }
  for (const ref of UNUSED) {
    assert.ok(!after.includes(ref), `prune left the unused ${ref}`);
  }
  assertPauseImagePinned(boot, 'after', running);

  // The CRI's view: the unused images are gone by id (every tag), the rest are there.
  type CriImage = { id: string; repoTags: string[]; pinned: boolean };
  const criBefore = boot.json<CriImage[]>('cri-images-before.json');
  assert.ok(
    UNUSED.every((ref) => criBefore.some((image) => image.repoTags.includes(ref))),
    `CRI did not list every unused image before the prune: ${JSON.stringify(criBefore)}`,
  );
  const criAfterImages = boot.json<CriImage[]>('cri-images-after.json');
  const criAfter = criAfterImages.map((i) => i.id);
  // After the prune, as the kubelet would see it: the sandbox image still pinned.
  const sandboxAfter = criAfterImages.find((i) => i.repoTags.includes(SANDBOX_IMAGE));
  assert.equal(sandboxAfter?.pinned, true, `after the prune: ${JSON.stringify(sandboxAfter)}`);
  for (const image of criBefore) {
    const unused = image.repoTags.some((tag) => UNUSED.includes(tag));
    assert.equal(
      criAfter.includes(image.id),
      !unused,
      `${image.repoTags.join(', ')} (${image.id}) ${unused ? 'stayed' : 'was removed'}`,
    );
  }

  t.diagnostic(describeTimeline(boot));
  t.diagnostic(`qemu ran ${result.vm.seconds.toFixed(1)} s`);
});
