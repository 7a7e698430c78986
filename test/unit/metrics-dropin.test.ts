import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseConfig } from '../../agent/config/load.js';
import { ConfigError } from '../../agent/errors.js';
import {
  getMonitorDropInInputs,
  monitorDropInPath,
  renderMonitorDropIn,
} from '../../agent/metrics/monitor-dropin.js';

/** The directives of the drop-in, in order, as key and raw value. */
function getDirectives(text: string): [string, string][] {
  return text
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#') && !line.startsWith('['))
    .map((line) => {
      const equals = line.indexOf('=');
      return [line.slice(0, equals), line.slice(equals + 1)];
    });
}

describe('renderMonitorDropIn', () => {
  test('each path becomes an optional ReadWritePaths= line in the [Service] section', () => {
    const text = renderMonitorDropIn([
      '/var/lib/node_exporter/textfile_collector',
      '/var/log/ctrvol',
    ]);
    assert.match(text, /^# Written by ctrvol/);
    assert.ok(text.includes('\n[Service]\n'));
    assert.ok(text.endsWith('\n'));
    assert.deepEqual(getDirectives(text), [
      ['ReadWritePaths', '-/var/lib/node_exporter/textfile_collector'],
      ['ReadWritePaths', '-/var/log/ctrvol'],
    ]);
  });

  test('the same input always gives the same text, with duplicates dropped', () => {
    const a = renderMonitorDropIn(['/b', '/a', '/b'], ['/dev/xvdb', '/dev/xvdb']);
    const b = renderMonitorDropIn(['/a', '/b'], ['/dev/xvdb']);
    assert.equal(a, b);
  });

  test('a path with spaces or quotes is quoted and escaped, and "%" is doubled', () => {
    const text = renderMonitorDropIn(['/var/lib/my metrics', '/srv/say "hi"\\', '/srv/50%']);
    assert.deepEqual(getDirectives(text), [
      ['ReadWritePaths', '-/srv/50%%'],
      ['ReadWritePaths', '"-/srv/say \\"hi\\"\\\\"'],
      ['ReadWritePaths', '"-/var/lib/my metrics"'],
    ]);
  });

  test('writable devices become DeviceAllow= lines with rw', () => {
    const text = renderMonitorDropIn(['/var/lib/containerd'], ['/dev/disk/by-id/nvme-vol0abc']);
    assert.deepEqual(getDirectives(text), [
      ['ReadWritePaths', '-/var/lib/containerd'],
      ['DeviceAllow', '/dev/disk/by-id/nvme-vol0abc rw'],
    ]);
  });

  const refused: [string, string[], string[]][] = [
    ['a relative path', ['var/lib/x'], []],
    ['a path holding a line feed', ['/var/lib/x\n[Service]\nUser=nobody'], []],
    ['a device outside /dev', [], ['/tmp/disk']],
    ['a device path with a space', [], ['/dev/disk/by-label/my disk']],
  ];

  for (const [name, paths, devices] of refused) {
    test(`it refuses ${name} with a config error`, () => {
      assert.throws(() => renderMonitorDropIn(paths, devices), ConfigError);
    });
  }

  test('the drop-in lives in the monitor unit’s .d folder under /etc', () => {
    assert.equal(monitorDropInPath, 'etc/systemd/system/ctrvol-monitor.service.d/10-ctrvol.conf');
  });
});

describe('getMonitorDropInInputs', () => {
  test('the default config needs the default mount point only', () => {
    const config = parseConfig('volume:\n  device: /dev/xvdb\n');
    assert.deepEqual(getMonitorDropInInputs(config, 'xfs'), {
      paths: ['/var/lib/containerd'],
      writesDevice: false,
    });
  });

  test('the metrics files add their folders, and an ext4 volume its device for resize2fs', () => {
    const config = parseConfig(
      [
        'volume:',
        '  device: /dev/nvme1n1',
        '  filesystem: ext4',
        '  mountPoint: /data/containerd',
        'monitor:',
        '  metrics:',
        '    textfile: /var/lib/node_exporter/textfile_collector/ctrvol.prom',
        '    emfFile: /var/log/ctrvol/emf.log',
        '',
      ].join('\n'),
    );
    assert.deepEqual(getMonitorDropInInputs(config, 'ext4'), {
      paths: ['/data/containerd', '/var/lib/node_exporter/textfile_collector', '/var/log/ctrvol'],
      writesDevice: true,
    });
  });

  test('the filesystem on the volume decides, not volume.filesystem', () => {
    // ctrvol reuses an ext4 volume of its label when the config says xfs; resize2fs then still
    // needs the device, and an xfs volume under an ext4 config does not.
    const xfsConfig = parseConfig('volume:\n  device: /dev/xvdb\n');
    assert.equal(getMonitorDropInInputs(xfsConfig, 'ext4').writesDevice, true);
    const ext4Config = parseConfig('volume:\n  device: /dev/xvdb\n  filesystem: ext4\n');
    assert.equal(getMonitorDropInInputs(ext4Config, 'xfs').writesDevice, false);
  });
});
