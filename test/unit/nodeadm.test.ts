import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import {
  findInDocuments,
  findInUserData,
  findLocalStorageClaims,
  getOwnerConflict,
  type LocalStorageClaim,
} from '../../agent/host/nodeadm.js';
import { makeTempDir } from '../helpers/temp.js';

const raidNodeConfig = `apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  cluster:
    name: demo
  instance:
    localStorage:
      strategy: RAID0
`;

// What Karpenter sends for an EC2NodeClass with instanceStorePolicy: RAID0, beside a user's own
// shell script part.
const karpenterUserData = `MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="//"

--//
Content-Type: text/x-shellscript; charset="us-ascii"

#!/bin/bash
echo "localStorage: in a script is not a NodeConfig"

--//
Content-Type: application/node.eks.aws

${raidNodeConfig}
--//--
`;

describe('finding a NodeConfig that sets localStorage', () => {
  test('reads the NodeConfig part of a MIME document and ignores the script part', () => {
    assert.deepEqual(findInUserData(karpenterUserData, 'user-data.txt'), [
      { source: 'user-data.txt (part 2)', strategy: 'RAID0', disabledMounts: [] },
    ]);
  });

  test('reads a base64 part, and a NodeConfig given without MIME', () => {
    const encoded = [
      'Content-Type: multipart/mixed; boundary=BOUNDARY',
      '',
      '--BOUNDARY',
      'Content-Type: application/node.eks.aws',
      'Content-Transfer-Encoding: base64',
      '',
      Buffer.from(raidNodeConfig).toString('base64'),
      '--BOUNDARY--',
      '',
    ].join('\r\n');
    assert.equal(findInUserData(encoded, 'ud')[0]?.strategy, 'RAID0');
    assert.equal(findInUserData(raidNodeConfig, 'ud')[0]?.source, 'ud');
  });

  test('reads a MIME document whose Content-Type header is folded onto a second line', () => {
    const folded = karpenterUserData.replace(
      'Content-Type: multipart/mixed; boundary="//"',
      'Content-Type: multipart/mixed;\n boundary="//"',
    );
    assert.equal(findInUserData(folded, 'ud')[0]?.strategy, 'RAID0');
  });

  test('reads disabledMounts, JSON documents, and skips other kinds and broken YAML', () => {
    const json = JSON.stringify({
      kind: 'NodeConfig',
      spec: { instance: { localStorage: { strategy: 'RAID10', disabledMounts: ['Containerd'] } } },
    });
    assert.deepEqual(findInDocuments(json, 'x.json'), [
      { source: 'x.json', strategy: 'RAID10', disabledMounts: ['Containerd'] },
    ]);
    assert.deepEqual(findInDocuments('kind: Other\nspec: {instance: {localStorage: {}}}', 'y'), []);
    assert.deepEqual(findInDocuments('kind: NodeConfig\nspec: {cluster: {name: a}}', 'y'), []);
    assert.deepEqual(findInDocuments('kind: [unclosed', 'y'), []);
  });

  test('reads gzipped user data and the drop-in folder, and nothing when neither exists', async (t) => {
    const temp = await makeTempDir('ctrvol-nodeadm');
    t.after(() => temp.cleanup());
    const userDataFile = path.join(temp.path, 'user-data.txt');
    const dropInDir = path.join(temp.path, 'nodeadm.d');
    assert.deepEqual(await findLocalStorageClaims({ userDataFile, dropInDir }), []);

    await writeFile(userDataFile, gzipSync(karpenterUserData));
    await mkdir(dropInDir);
    await writeFile(path.join(dropInDir, '20-disks.yaml'), raidNodeConfig);
    await writeFile(path.join(dropInDir, 'README'), raidNodeConfig);
    const claims = await findLocalStorageClaims({ userDataFile, dropInDir });
    assert.deepEqual(
      claims.map((claim) => claim.source),
      [`${userDataFile} (part 2)`, path.join(dropInDir, '20-disks.yaml')],
    );
  });
});

describe('deciding whether nodeadm and ctrvol both claim the storage', () => {
  const claim = (strategy: string, disabledMounts: string[] = []): LocalStorageClaim => ({
    source: 'ud',
    strategy,
    disabledMounts,
  });
  const onEbs = { mountPoint: '/var/lib/containerd', bindMounts: [] };

  test('both on the instance store is always a conflict, whatever nodeadm mounts', () => {
    assert.match(
      getOwnerConflict(claim('Mount'), { ...onEbs, instanceStore: 'raid0' }) ?? '',
      /both would build an array/,
    );
  });

  test("nodeadm's array over ctrvol's EBS volume at /var/lib/containerd is a conflict", () => {
    assert.equal(
      getOwnerConflict(claim('RAID0'), onEbs),
      'nodeadm would mount its own array over /var/lib/containerd after ctrvol-setup has run',
    );
  });

  test('no conflict when nodeadm leaves containerd alone, or mounts disks without binding', () => {
    assert.equal(getOwnerConflict(claim('RAID0', ['Containerd']), onEbs), undefined);
    assert.equal(getOwnerConflict(claim('Mount'), onEbs), undefined);
    assert.equal(
      getOwnerConflict(claim('RAID0'), { mountPoint: '/data/containerd', bindMounts: [] }),
      undefined,
    );
  });

  test('a bind mount nodeadm also binds is a conflict, unless nodeadm was told to skip it', () => {
    const binds = { mountPoint: '/data/containerd', bindMounts: ['/var/log/pods'] };
    assert.match(getOwnerConflict(claim('RAID10'), binds) ?? '', /over \/var\/log\/pods/);
    assert.equal(getOwnerConflict(claim('RAID10', ['PodLogs']), binds), undefined);
  });
});
