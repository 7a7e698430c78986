/**
 * Assertions that several scenarios make on what a guest boot reported.
 */
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import path from 'node:path';
import {
  type Boot,
  findmnt,
  type FindmntFs,
  nvmeNameOf,
  parseImages,
  PINNED,
  SANDBOX_IMAGE,
  type ScenarioResult,
  VOL1,
} from './harness.js';

/** A generous deadline for a test that boots a VM: the base image build plus every boot. */
export function vmTimeout(boots: number): number {
  return (12 * 60 + boots * 4 * 60) * 1000;
}

export interface PodReport {
  ok?: boolean;
  images?: { id: string; repoTags: string[]; pinned: boolean }[];
  sandboxState?: string;
  containerState?: string;
  sandboxMs?: number;
  elapsedMs?: number;
  error?: { step: string; message: string; code?: string };
}

/** The pod CLI's report for `pod NAME` in the guest script. */
export function podReport(boot: Boot, name: string): PodReport {
  const file = `pod-${name}.json`;
  const text = boot.text(file);
  if (text.trim() === '') {
    throw new Error(
      `boot ${boot.number}: pod ${name} printed nothing: ${boot.text(`pod-${name}.err`)}`,
    );
  }
  return JSON.parse(text) as PodReport;
}

/** A pod sandbox and its container started through CRI. */
export function assertPodRan(boot: Boot, name: string): PodReport {
  const pod = podReport(boot, name);
  assert.equal(
    pod.ok,
    true,
    `boot ${boot.number}: pod ${name} did not start: ${JSON.stringify(pod.error ?? pod)}`,
  );
  assert.equal(pod.sandboxState, 'SANDBOX_READY');
  assert.equal(pod.containerState, 'CONTAINER_RUNNING');
  return pod;
}

/**
 * The sandbox image is in the store under its name with the pinned label (ctr's view), and the
 * CRI reports it pinned (the kubelet's view, which keeps it out of image GC).
 */
export function assertPauseImagePinned(boot: Boot, tag: string, pod: PodReport): void {
  const images = parseImages(boot.text(`${tag}.images.txt`));
  const pause = images.find((i) => i.ref === SANDBOX_IMAGE);
  assert.ok(
    pause,
    `boot ${boot.number}: no ${SANDBOX_IMAGE} in k8s.io:\n${boot.text(`${tag}.images.txt`)}`,
  );
  assert.ok(pause.labels.split(',').includes(PINNED), `not pinned: ${pause.labels}`);
  const viaCri = pod.images?.find((i) => i.repoTags.includes(SANDBOX_IMAGE));
  assert.equal(viaCri?.pinned, true, `CRI does not report ${SANDBOX_IMAGE} pinned`);
}

/**
 * /var/lib/containerd is the data volume (the device behind its by-id link), xfs with ctrvol's
 * label, and its UUID is the one ctrvol recorded: the UUID by which every later boot finds it.
 */
export function assertStoreOnVolume(boot: Boot, tag: string, device: string): FindmntFs {
  const fs = findmnt(boot, tag);
  assert.ok(fs, `boot ${boot.number}: /var/lib/containerd is not a mount point`);
  assert.equal(fs.target, '/var/lib/containerd');
  assert.equal(fs.source, device, `mounted from ${fs.source}, not the data volume ${device}`);
  assert.equal(fs.fstype, 'xfs');
  assert.equal(fs.label, 'ctrvol');
  assert.match(fs.uuid ?? '', /^[0-9a-f-]{36}$/);
  assert.ok(!fs.options.split(',').includes('ro'), `mounted read-only: ${fs.options}`);
  // The other EBS volume is nobody's business.
  const other = nvmeNameOf(boot, tag, VOL1);
  assert.ok(other, `boot ${boot.number}: the second NVMe disk is missing`);
  assert.notEqual(`/dev/${other}`, device);
  return fs;
}

/** ctrvol's own lines in the journal for this boot, as text. */
export function ctrvolLines(boot: Boot): string[] {
  return boot
    .journal()
    .filter((e) => e.SYSLOG_IDENTIFIER === 'ctrvol')
    .map((e) => String(e.MESSAGE ?? ''));
}

/** ctrvol's journal lines at warning priority or worse (syslog 0-4). */
export function ctrvolWarnings(boot: Boot): string[] {
  return boot
    .journal()
    .filter((e) => e.SYSLOG_IDENTIFIER === 'ctrvol' && Number(e.PRIORITY) <= 4)
    .map((e) => `<${String(e.PRIORITY)}> ${String(e.MESSAGE ?? '')}`);
}

/**
 * Not a byte was ever written to the disk: its sparse image file still has no block allocated.
 * The guest's reads (udev's and blkid's probes) allocate nothing; any write would, even of zeros.
 */
export function assertUntouched(result: ScenarioResult, file: string): void {
  const { blocks } = statSync(path.join(result.runDir, file));
  assert.equal(blocks, 0, `${file} was written to: ${blocks * 512} bytes are allocated`);
}
