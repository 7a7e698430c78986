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
  timeScale,
  VOL1,
} from './harness.js';

/** Boot n of a scenario, or a failed assertion saying the guest never reported it. */
export function getBoot(result: ScenarioResult, n: number): Boot {
  const found = result.boots.find((b) => b.number === n);
  assert.ok(found, `the guest reported no boot ${n}`);
  return found;
}

/** A generous deadline for a test that boots a VM: the base image build plus every boot. */
export function vmTimeout(boots: number): number {
  return (12 * 60 + boots * 4 * 60) * 1000 * timeScale;
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

/** The sandbox image is in the store under its name with the pinned label (ctr's view). */
export function assertPauseImageLabelled(boot: Boot, tag: string): void {
  const images = parseImages(boot.text(`${tag}.images.txt`));
  const pause = images.find((i) => i.ref === SANDBOX_IMAGE);
  assert.ok(
    pause,
    `boot ${boot.number}: no ${SANDBOX_IMAGE} in k8s.io:\n${boot.text(`${tag}.images.txt`)}`,
  );
  assert.ok(pause.labels.split(',').includes(PINNED), `not pinned: ${pause.labels}`);
}

/**
 * The sandbox image is in the store under its name with the pinned label (ctr's view), and the
 * CRI reports it pinned (the kubelet's view, which keeps it out of image GC).
 */
export function assertPauseImagePinned(boot: Boot, tag: string, pod: PodReport): void {
  assertPauseImageLabelled(boot, tag);
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

/** `mdadm --detail --export` as recorded by lib.sh's md_snapshot, as KEY=value pairs. */
export function mdDetail(boot: Boot, tag: string): Record<string, string> {
  const name = `${tag}.md-detail.txt`;
  assert.equal(boot.rc(name), 0, `boot ${boot.number}: mdadm --detail: ${boot.text(name)}`);
  return Object.fromEntries(
    boot
      .text(name)
      .split('\n')
      .filter((line) => line.includes('='))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
}

/** One array's lines in /proc/mdstat: "md127 : active raid10 nvme3n1[3] ..." and what follows. */
export function mdstatEntry(
  boot: Boot,
  tag: string,
  name: string,
): { status: string; members: string[]; lines: string[] } {
  const text = boot.text(`${tag}.mdstat.txt`);
  const lines = text.split('\n');
  const at = lines.findIndex((line) => line.startsWith(`${name} : `));
  assert.ok(at >= 0, `boot ${boot.number}: no ${name} in /proc/mdstat:\n${text}`);
  const entry: string[] = [];
  for (let i = at; i < lines.length && (lines[i] ?? '').trim() !== ''; i++) {
    entry.push((lines[i] ?? '').trim());
  }
  const status = (entry[0] ?? '').slice(name.length + 3);
  const members = [...status.matchAll(/(\S+)\[\d+\]/g)].map((m) => m[1] ?? '');
  return { status, members: members.sort(), lines: entry };
}

/**
 * ctrvol's md array as the kernel and mdadm show it: the one array named any:ctrvol,
 * metadata 1.2, 256 KiB chunks, of the given level, built from exactly the disks with these
 * serials, every member working, and nothing resyncing (blank raid10 members are created clean).
 * Returns the array's kernel device (/dev/md127) and its UUID.
 */
export function assertCtrvolArray(
  boot: Boot,
  tag: string,
  level: 'raid0' | 'raid10',
  serials: string[],
): { device: string; uuid: string } {
  const device = boot.text(`${tag}.md-device.txt`).trim();
  assert.match(device, /^\/dev\/md\d+$/, `boot ${boot.number}: arrays named ctrvol: ${device}`);
  const detail = mdDetail(boot, tag);
  assert.equal(detail.MD_LEVEL, level);
  assert.equal(detail.MD_METADATA, '1.2');
  assert.equal(detail.MD_NAME, 'any:ctrvol');
  assert.equal(detail.MD_DEVICES, String(serials.length));
  const uuid = detail.MD_UUID ?? '';
  assert.match(uuid, /^[0-9a-f]{8}(:[0-9a-f]{8}){3}$/);

  const md = mdstatEntry(boot, tag, path.basename(device));
  const expected = serials.map((serial) => {
    const name = nvmeNameOf(boot, tag, serial);
    assert.ok(name, `boot ${boot.number}: no disk with serial ${serial}`);
    return name;
  });
  assert.deepEqual(md.members, expected.sort(), `members of ${device}: ${md.lines.join(' / ')}`);
  assert.match(md.status, new RegExp(`^active ${level} `), md.lines.join(' / '));
  const geometry = md.lines[1] ?? '';
  // raid0 prints "256k chunks", raid10 "256K chunks".
  assert.match(geometry, / super 1\.2 256[kK] chunks/, geometry);
  if (level === 'raid10') {
    const n = serials.length;
    assert.ok(geometry.endsWith(` 2 near-copies [${n}/${n}] [${'U'.repeat(n)}]`), geometry);
  }
  assert.ok(
    !md.lines.some((line) => /resync|recovery/.test(line)),
    `boot ${boot.number}: ${device} is resyncing: ${md.lines.join(' / ')}`,
  );
  return { device, uuid: uuid.toLowerCase() };
}
