import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, test } from 'node:test';

/**
 * The sample node-problem-detector configs, checked the way NPD's custom plugin monitor loads
 * them (pkg/custompluginmonitor/types/config.go): the "custom" plugin, Go durations, a rule
 * timeout no longer than the global one, and a default condition for every permanent rule.
 */

interface NpdConfig {
  plugin: string;
  pluginConfig: {
    invoke_interval: string;
    timeout: string;
    max_output_length: number;
    concurrency: number;
    enable_message_change_based_condition_update: boolean;
  };
  source: string;
  metricsReporting: boolean;
  conditions: { type: string; reason: string; message: string }[];
  rules: {
    type: 'permanent' | 'temporary';
    condition: string;
    reason: string;
    path: string;
    args: string[];
    timeout: string;
  }[];
}

const npdDir = new URL('../../packaging/npd/', import.meta.url);

async function load(name: string): Promise<NpdConfig> {
  return JSON.parse(await readFile(new URL(name, npdDir), 'utf8')) as NpdConfig;
}

/** Go's time.ParseDuration, for the units these files use. */
function parseGoDuration(text: string): number {
  const units: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  let rest = text;
  while (rest !== '') {
    const digits = rest.length - rest.replace(/^\d+/, '').length;
    const unit = rest[digits];
    assert.ok(digits > 0 && unit !== undefined && unit in units, `${text} is not a Go duration`);
    total += Number(rest.slice(0, digits)) * (units[unit] ?? 0);
    rest = rest.slice(digits + 1);
  }

  return total;
}

for (const [name, argv] of [
  ['ctrvol-plugin.json', ['/usr/bin/ctrvol', 'check']],
  [
    'ctrvol-plugin-daemonset.json',
    ['/usr/bin/nsenter', '--target', '1', '--mount', '--', '/usr/bin/ctrvol', 'check'],
  ],
] as const) {
  describe(`packaging/npd/${name}`, () => {
    test('it is a custom plugin config that NPD accepts', async () => {
      const config = await load(name);
      assert.equal(config.plugin, 'custom');
      assert.notEqual(config.source, '');
      const global = parseGoDuration(config.pluginConfig.timeout);
      for (const rule of config.rules) {
        assert.ok(parseGoDuration(rule.timeout) <= global, 'a rule timeout exceeds the global one');
        if (rule.type === 'permanent') {
          const types = config.conditions.map((condition) => condition.type);
          assert.ok(types.includes(rule.condition), `${rule.condition} has no default condition`);
        }
      }
    });

    test('it runs ctrvol check every few minutes, with a timeout well inside the interval', async () => {
      const config = await load(name);
      assert.equal(config.rules.length, 1);
      const [rule] = config.rules;
      assert.deepEqual([rule?.path, ...(rule?.args ?? [])], argv);
      const interval = parseGoDuration(config.pluginConfig.invoke_interval);
      assert.ok(interval >= 60_000 && interval <= 10 * 60_000, `every ${interval} ms`);
      assert.ok(parseGoDuration(config.pluginConfig.timeout) <= interval / 2);
    });

    test('it sets ContainerdVolumeProblem from a message of at most 80 characters', async () => {
      const config = await load(name);
      assert.equal(config.pluginConfig.max_output_length, 80);
      assert.deepEqual(
        config.conditions.map((condition) => condition.type),
        ['ContainerdVolumeProblem'],
      );
      assert.equal(config.rules[0]?.type, 'permanent');
      assert.equal(config.rules[0]?.condition, 'ContainerdVolumeProblem');
      // A message that changes every tick ("91 % full", "92 % full") would rewrite the node's
      // status in the API server every few minutes.
      assert.equal(config.pluginConfig.enable_message_change_based_condition_update, false);
    });
  });
}

test('the two configs differ only in how they start ctrvol check', async () => {
  const host = await load('ctrvol-plugin.json');
  const daemonSet = await load('ctrvol-plugin-daemonset.json');
  const withoutCommand = (config: NpdConfig) => ({
    ...config,
    rules: config.rules.map(({ path: _path, args: _args, ...rest }) => rest),
  });
  assert.deepEqual(withoutCommand(daemonSet), withoutCommand(host));
});
