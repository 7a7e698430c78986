import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { symlink, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { loadConfig, maxConfigBytes, parseConfig } from '../../agent/config/load.js';
import { makeTempDir } from '../helpers/temp.js';

describe('the config', () => {
  for (const device of ['xvdb', '/dev/sdf', 'vol-0123456789abcdef0', 'auto', '/dev/disk/by-id/x']) {
    test(`accepts volume.device: ${device}`, () => {
      assert.equal(parseConfig(`volume: {device: "${device}"}`).volume.device, device);
    });
  }

  test('rejects a YAML alias bomb with exit code 2 instead of expanding it', () => {
    const bomb = [
      'a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]',
      'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]',
      'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]',
      'd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]',
      'e: [*d, *d, *d, *d, *d, *d, *d, *d, *d]',
    ].join('\n');

    assert.throws(() => parseConfig(bomb), { message: /^config: not a usable YAML/, exitCode: 2 });
  });

  test('fills every default from a config that names only the device', () => {
    const config = parseConfig('volume:\n  device: /dev/xvdb\n');

    assert.deepEqual(config, {
      volume: {
        device: '/dev/xvdb',
        filesystem: 'xfs',
        label: 'ctrvol',
        mountPoint: '/var/lib/containerd',
        mountOptions: ['defaults', 'noatime'],
        preserve: true,
        reclaimRootCopy: false,
        waitSeconds: 120,
        bindMounts: [],
      },
      onFailure: 'block',
      containerd: {
        socket: '/run/containerd/containerd.sock',
        config: '/etc/containerd/config.toml',
        sandboxImageArchive: '/etc/eks/pause.tar',
      },
      prune: { enabled: true, highPercent: 80, lowPercent: 70, minAgeSeconds: 300, keep: [] },
      monitor: {
        schedule: '*/5 * * * *',
        warnPercent: { root: 80, volume: 90 },
        metrics: { namespace: 'ctrvol', dimensions: {} },
      },
    });
  });

  // Each bad value gives one line that names the key, the value received and what is allowed.
  const rejections: [string, string][] = [
    [
      'volume: {device: /dev/xvdb, filesystem: btrfs}',
      'config: volume.filesystem: got "btrfs"; allowed: "xfs" | "ext4"',
    ],
    [
      'volume: {device: nvme1n1}',
      'config: volume.device: got "nvme1n1"; allowed: a device path under /dev, a block-device ' +
        'mapping name (xvdb, /dev/sdf), an EBS volume id (vol-0123…) or "auto"',
    ],
    [
      'volume: {device: /srv/disk.img}',
      'config: volume.device: got "/srv/disk.img"; allowed: a device path under /dev, a ' +
        'block-device mapping name (xvdb, /dev/sdf), an EBS volume id (vol-0123…) or "auto"',
    ],
    ['{}', 'config: volume: got nothing; allowed: a mapping of keys'],
    [
      'volume: {device: /dev/xvdb, label: thirteenchars}',
      'config: volume.label: got "thirteenchars"; allowed: at most 12 characters for xfs',
    ],
    [
      'volume: {device: /dev/xvdb, filesystem: ext4, label: seventeen-chars-x}',
      'config: volume.label: got "seventeen-chars-x"; allowed: at most 16 characters for ext4',
    ],
    [
      'volume: {device: /dev/xvdb, label: "a b"}',
      'config: volume.label: got "a b"; allowed: letters, digits, "_", "." and "-"',
    ],
    [
      'volume: {device: /dev/xvdb, mountPoint: var/lib/containerd}',
      'config: volume.mountPoint: got "var/lib/containerd"; allowed: an absolute, normalised path without a trailing slash',
    ],
    [
      'volume: {device: /dev/xvdb, mountPoint: /}',
      'config: volume.mountPoint: got "/"; allowed: a directory other than /',
    ],
    [
      'volume: {device: /dev/xvdb, mountOptions: [ro]}',
      'config: volume.mountOptions.0: got "ro"; allowed: options that leave the volume writable ' +
        '(containerd writes to it)',
    ],
    [
      'volume: {device: /dev/xvdb, mountOptions: "noatime"}',
      'config: volume.mountOptions: got "noatime"; allowed: a list',
    ],
    [
      'volume: {device: /dev/xvdb, preserve: "yes"}',
      'config: volume.preserve: got "yes"; allowed: true or false',
    ],
    [
      'volume: {device: /dev/xvdb, waitSeconds: -1}',
      'config: volume.waitSeconds: got -1; allowed: a value of at least 0',
    ],
    [
      'volume: {device: /dev/xvdb, mountPoint: /var/lib/containerd/}',
      'config: volume.mountPoint: got "/var/lib/containerd/"; allowed: an absolute, normalised ' +
        'path without a trailing slash',
    ],
    [
      'volume: {device: /dev/xvdb, waitSeconds: 1e308}',
      'config: volume.waitSeconds: got 1e+308; allowed: a value of at most 3600',
    ],
    [
      'volume: {device: /dev/xvdb, waitSeconds: 1.5}',
      'config: volume.waitSeconds: got 1.5; allowed: a whole number from 0 to 3600',
    ],
    [
      'volume: {device: /dev/xvdb, waitSeconds: .inf}',
      'config: volume.waitSeconds: got Infinity; allowed: a number',
    ],
    [
      'volume: {device: /dev/xvdb}\nonFailure: ignore',
      'config: onFailure: got "ignore"; allowed: "block" | "rootDisk"',
    ],
    [
      'volume: {device: /dev/xvdb}\nprune: {highPercent: 60}',
      'config: prune.lowPercent: got 70 (the default); allowed: a value below prune.highPercent (60)',
    ],
    [
      'volume: {device: /dev/xvdb}\nprune: {highPercent: 100}',
      'config: prune.highPercent: got 100; allowed: a value of at most 99',
    ],
    [
      'volume: {device: /dev/xvdb}\ncontainerd: {namespace: default}',
      'config: containerd.namespace: unknown key; allowed here: socket, config, sandboxImageArchive',
    ],
    [
      'volume: {device: /dev/xvdb}\nmonitor: {schedule: "every five minutes"}',
      'config: monitor.schedule: got "every five minutes"; allowed: a cron expression of 5 or 6 ' +
        'fields, such as "*/5 * * * *"',
    ],
    [
      'volume: {device: /dev/xvdb}\nmonitor: {metrics: {textfile: /var/lib/ne/ctrvol.txt}}',
      'config: monitor.metrics.textfile: got "/var/lib/ne/ctrvol.txt"; allowed: a path ending in .prom',
    ],
    [
      'volume: {device: /dev/xvdb, mountpoint: /x}',
      'config: volume.mountpoint: unknown key; allowed here: device, devices, raid, ' +
        'instanceStore, instanceStoreSerial, filesystem, label, mountPoint, mountOptions, ' +
        'preserve, reclaimRootCopy, waitSeconds, bindMounts',
    ],
    [
      'volume: {device: xvdb}\nmonitor: {metrics: {dimensions: {"bad key": x}}}',
      'config: monitor.metrics.dimensions: got the key "bad key"; allowed: dimension names of ' +
        'letters, digits, "_", ".", ":" and "-"',
    ],
    [
      'volume: {filesystem: xfs}',
      'config: volume.device: got nothing; allowed: one of volume.device, volume.devices (with ' +
        'volume.raid) or volume.instanceStore',
    ],
    [
      'volume: {device: /dev/xvdb, instanceStore: raid0}',
      'config: volume.instanceStore: got "raid0"; allowed: nothing, since volume.device is set: ' +
        'give only one',
    ],
    [
      'volume: {devices: [xvdb, xvdc], raid: raid0, instanceStore: single}',
      'config: volume.instanceStore: got "single"; allowed: nothing, since volume.devices is set: ' +
        'give only one',
    ],
    [
      'volume: {devices: [xvdb, xvdc]}',
      'config: volume.raid: got nothing; allowed: "raid0" | "raid10", which volume.devices needs',
    ],
    [
      'volume: {device: xvdb, raid: raid0}',
      'config: volume.raid: got "raid0"; allowed: nothing without volume.devices',
    ],
    [
      'volume: {devices: [xvdb], raid: raid0}',
      'config: volume.devices: got ["xvdb"]; allowed: a list of at least 2 item(s)',
    ],
    [
      'volume: {devices: [xvdb, auto], raid: raid0}',
      'config: volume.devices.1: got "auto"; allowed: a device path, mapping name or volume id ' +
        '("auto" names no single device)',
    ],
    [
      'volume: {devices: [xvdb, nvme2n1], raid: raid10}',
      'config: volume.devices.1: got "nvme2n1"; allowed: a device path under /dev, a block-device ' +
        'mapping name (xvdb, /dev/sdf), an EBS volume id (vol-0123…) or "auto"',
    ],
    [
      'volume: {devices: [xvdb, xvdb], raid: raid0}',
      'config: volume.devices.1: got "xvdb"; allowed: a device not already listed',
    ],
    [
      'volume: {instanceStore: raid5}',
      'config: volume.instanceStore: got "raid5"; allowed: "raid0" | "raid10" | "single"',
    ],
    [
      'volume: {device: xvdb, instanceStoreSerial: "AWS*"}',
      'config: volume.instanceStoreSerial: got "AWS*"; allowed: nothing without volume.instanceStore',
    ],
    [
      'volume: {instanceStore: raid0, instanceStoreSerial: "a b"}',
      'config: volume.instanceStoreSerial: got "a b"; allowed: a serial glob of letters, digits, ' +
        '"_", ".", "-", "*" and "?"',
    ],
    [
      'volume: {device: xvdb, bindMounts: [/var/lib/containerd/kubelet]}',
      'config: volume.bindMounts.0: got "/var/lib/containerd/kubelet"; allowed: a directory ' +
        'outside volume.mountPoint (/var/lib/containerd) and not above it',
    ],
    [
      'volume: {device: xvdb, bindMounts: [/var/lib/kubelet, /var/lib/kubelet/pods]}',
      'config: volume.bindMounts.0: got "/var/lib/kubelet"; allowed: a directory neither equal ' +
        'to, inside nor above another entry (/var/lib/kubelet/pods) (and 1 more)',
    ],
    [
      'volume: {device: xvdb, bindMounts: [/var/lib]}',
      'config: volume.bindMounts.0: got "/var/lib"; allowed: a data directory such as ' +
        '/var/lib/kubelet or /var/log/pods (and 1 more)',
    ],
    [
      'volume: {device: xvdb, bindMounts: [/proc/x]}',
      'config: volume.bindMounts.0: got "/proc/x"; allowed: a data directory such as ' +
        '/var/lib/kubelet or /var/log/pods',
    ],
    [
      'volume: {device: xvdb, bindMounts: [var/log/pods]}',
      'config: volume.bindMounts.0: got "var/log/pods"; allowed: an absolute, normalised path ' +
        'without a trailing slash',
    ],
  ];

  // A path that holds a control character or is longer than the kernel takes is refused here,
  // not after mkfs when the drop-ins are written or the mount point is made.
  const controls = 'allowed: a path without control characters (\\x00-\\x1f, \\x7f)';
  const tooLong = 'allowed: a path of at most 4095 bytes, with no name in it over 255';
  const longName = 'a'.repeat(256);
  rejections.push(
    [
      'volume: {device: xvdb}\nmonitor: {metrics: {textfile: "/tmp/x/a\\tb/x.prom"}}',
      `config: monitor.metrics.textfile: got "/tmp/x/a\\tb/x.prom"; ${controls}`,
    ],
    [
      'volume: {device: xvdb}\nmonitor: {metrics: {emfFile: "/var/log/ctrvol/emf\\x7f.log"}}',
      `config: monitor.metrics.emfFile: got "/var/log/ctrvol/emf\\u007f.log"; ${controls}`,
    ],
    [
      'volume: {device: xvdb, mountPoint: "/tmp/x/m\\nx"}',
      `config: volume.mountPoint: got "/tmp/x/m\\nx"; ${controls}`,
    ],
    ['volume: {device: "/dev/xvdb\\n"}', `config: volume.device: got "/dev/xvdb\\n"; ${controls}`],
    ['volume: {device: "/dev/x\\0y"}', `config: volume.device: got "/dev/x\\u0000y"; ${controls}`],
    [
      'volume: {devices: [xvdb, "/dev/disk/by-id/x\\ry"], raid: raid0}',
      `config: volume.devices.1: got "/dev/disk/by-id/x\\ry"; ${controls}`,
    ],
    [
      'volume: {device: xvdb, bindMounts: ["/var/lib/kubelet\\e[31m"]}',
      `config: volume.bindMounts.0: got "/var/lib/kubelet\\u001b[31m"; ${controls}`,
    ],
    [
      'volume: {device: xvdb}\ncontainerd: {socket: "/run/containerd/\\x1f.sock"}',
      `config: containerd.socket: got "/run/containerd/\\u001f.sock"; ${controls}`,
    ],
    [
      'volume: {device: xvdb}\ncontainerd: {config: "/etc/containerd/\\tconfig.toml"}',
      `config: containerd.config: got "/etc/containerd/\\tconfig.toml"; ${controls}`,
    ],
    [
      'volume: {device: xvdb}\ncontainerd: {sandboxImageArchive: "/etc/eks/\\npause.tar"}',
      `config: containerd.sandboxImageArchive: got "/etc/eks/\\npause.tar"; ${controls}`,
    ],
    [
      `volume: {device: "/dev/${'x'.repeat(100_000)}"}`,
      `config: volume.device: got "/dev/${'x'.repeat(115)}"… (100005 characters); ${tooLong}`,
    ],
    [
      `volume: {device: xvdb, mountPoint: "/srv/${longName}"}`,
      `config: volume.mountPoint: got "/srv/${'a'.repeat(115)}"… (261 characters); ${tooLong}`,
    ],
    [
      `volume: {device: xvdb}\ncontainerd: {socket: "/run/${'s'.repeat(98)}.sock"}`,
      `config: containerd.socket: got "/run/${'s'.repeat(98)}.sock"; allowed: a socket path of ` +
        'at most 107 bytes',
    ],
    // The value shown stays on one line even where JSON would leave a line separator as it is.
    [
      'volume: {device: xvdb, label: "a\\Lb"}',
      'config: volume.label: got "a\\u2028b"; allowed: letters, digits, "_", "." and "-"',
    ],
  );

  for (const [yaml, message] of rejections) {
    test(`rejects ${yaml.replace(/\n/g, ' ').slice(0, 200)} with exit code 2`, () => {
      assert.throws(() => parseConfig(yaml), { message, exitCode: 2 });
    });
  }

  test('accepts each way of naming the storage on its own', () => {
    const pool = parseConfig('volume: {devices: [xvdb, vol-0123456789abcdef0], raid: raid10}');
    assert.deepEqual(pool.volume.devices, ['xvdb', 'vol-0123456789abcdef0']);
    assert.equal(pool.volume.raid, 'raid10');
    const store = parseConfig('volume: {instanceStore: raid0, instanceStoreSerial: "AWS*"}');
    assert.equal(store.volume.instanceStore, 'raid0');
    assert.equal(store.volume.device, undefined);
    const binds = parseConfig(
      'volume: {device: auto, bindMounts: [/var/lib/kubelet, /var/log/pods]}',
    );
    assert.deepEqual(binds.volume.bindMounts, ['/var/lib/kubelet', '/var/log/pods']);
  });

  test('rejects a directory given as the config file with exit code 2', async () => {
    await assert.rejects(loadConfig(import.meta.dirname), {
      exitCode: 2,
      message: `config ${import.meta.dirname}: a directory; pass --config FILE`,
    });
  });

  describe('the config file', () => {
    const withTemp = async (use: (dir: string) => Promise<void>) => {
      const temp = await makeTempDir('ctrvol-config');
      try {
        await use(temp.path);
      } finally {
        await temp.cleanup();
      }
    };

    test('loads a regular file', async () => {
      await withTemp(async (dir) => {
        const file = path.join(dir, 'config.yaml');
        await writeFile(file, 'volume: {device: xvdb}\n');
        assert.equal((await loadConfig(file)).volume.device, 'xvdb');
      });
    });

    // Opened without O_NONBLOCK, a FIFO with no writer holds the open for ever.
    test(
      'rejects a FIFO with exit code 2 instead of waiting for a writer',
      { timeout: 10_000 },
      async () => {
        await withTemp(async (dir) => {
          const file = path.join(dir, 'config.yaml');
          execFileSync('mkfifo', [file]);
          await assert.rejects(loadConfig(file), {
            exitCode: 2,
            message: `config ${file}: not a regular file; pass --config FILE`,
          });
        });
      },
    );

    test('rejects a symlink to /dev/zero with exit code 2 without reading it', async () => {
      await withTemp(async (dir) => {
        const file = path.join(dir, 'config.yaml');
        await symlink('/dev/zero', file);
        await assert.rejects(loadConfig(file), {
          exitCode: 2,
          message: `config ${file}: not a regular file; pass --config FILE`,
        });
      });
    });

    test('rejects a file above the size cap with exit code 2 without reading it', async () => {
      await withTemp(async (dir) => {
        const file = path.join(dir, 'config.yaml');
        await writeFile(file, '');
        // Sparse: its size says too large before a byte is read.
        await truncate(file, maxConfigBytes + 1);
        await assert.rejects(loadConfig(file), {
          exitCode: 2,
          message: `config ${file}: larger than ${maxConfigBytes} bytes; not a config`,
        });
      });
    });

    test('still loads a file of exactly the cap', async () => {
      await withTemp(async (dir) => {
        const file = path.join(dir, 'config.yaml');
        const head = 'volume: {device: xvdb}\n';
        await writeFile(file, head.padEnd(maxConfigBytes, '#'));
        assert.equal((await loadConfig(file)).volume.device, 'xvdb');
      });
    });
  });

  test('rejects YAML that does not parse, in one line', () => {
    assert.throws(
      () => parseConfig('volume: [\n'),
      (error: Error) => {
        assert.match(error.message, /^config( line \d+)?: not valid YAML: /);
        assert.equal(error.message.includes('\n'), false);
        return true;
      },
    );
  });
});
