import assert from 'node:assert/strict';
import path from 'node:path';
import { after, afterEach, describe, mock, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { build, type Plugin } from 'esbuild';
import { cronIntl } from '../../agent/monitor/cron-intl.js';
import { cronLocalTime } from '../../scripts/build-plugins.mjs';
import { makeTempDir } from '../helpers/temp.js';

// Fixed offsets, whole and half and three-quarter hours, DST of one hour and of half an hour,
// south and north.
const zones = [
  'UTC',
  'Europe/Berlin',
  'America/New_York',
  'America/St_Johns',
  'Asia/Kolkata',
  'Asia/Kathmandu',
  'Australia/Lord_Howe',
];

// Around DST changes in those zones in 2026, the turn of a year, and a leap day.
const starts = [
  '2026-03-08T06:30:00Z',
  '2026-03-29T00:30:00Z',
  '2026-04-04T14:30:00Z',
  '2026-10-03T15:00:00Z',
  '2026-10-25T00:30:00Z',
  '2026-11-01T05:30:00Z',
  '2026-12-31T23:58:00Z',
  '2028-02-28T22:00:00Z',
];

const expressions = [
  '*/5 * * * *',
  '* * * * * *',
  '30 2 * * *',
  '0 0 * * 0',
  '15 */2 * * *',
  '0 12 L * *',
];

const originalTz = process.env.TZ;
function useZone(zone: string): void {
  // Node re-reads the zone for Date and Intl alike when TZ is set.
  process.env.TZ = zone;
}

afterEach(() => {
  if (originalTz === undefined) {
    delete process.env.TZ;
  } else {
    process.env.TZ = originalTz;
  }
});

const fieldsOptions: Intl.DateTimeFormatOptions = {
  year: 'numeric',
  month: '2-digit',
  day: '2-digit',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
  weekday: 'short',
  hour12: false,
};
const offsetOptions: Intl.DateTimeFormatOptions = {
  timeZone: undefined,
  timeZoneName: 'shortOffset',
};

/** The fields node-cron reads: literals dropped, and midnight's "24" read as 0, as it does. */
function fieldsOf(parts: Intl.DateTimeFormatPart[]): Record<string, string> {
  const fields = Object.fromEntries(
    parts.filter((part) => part.type !== 'literal').map((part) => [part.type, part.value]),
  );
  if (fields.hour === '24') {
    fields.hour = '00';
  }
  return fields;
}

/** "GMT", "GMT+0", "GMT+5:30", "GMT-3" as minutes east of UTC. */
function offsetOf(parts: Intl.DateTimeFormatPart[]): number {
  const name = parts.find((part) => part.type === 'timeZoneName')?.value ?? '';
  const match = /^GMT(?:([+-])(\d{1,2})(?::(\d{2}))?)?$/.exec(name);
  assert.ok(match, `unexpected offset name "${name}"`);
  const minutes = Number(match[2] ?? 0) * 60 + Number(match[3] ?? 0);
  return match[1] === '-' ? -minutes : minutes;
}

describe("node-cron's Intl in the build", () => {
  test('gives the local fields and offset that Intl.DateTimeFormat gives', () => {
    for (const zone of zones) {
      useZone(zone);
      const fields = new cronIntl.DateTimeFormat('en-US', fieldsOptions);
      const offset = new cronIntl.DateTimeFormat('en-US', offsetOptions);
      const realFields = new Intl.DateTimeFormat('en-US', fieldsOptions);
      const realOffset = new Intl.DateTimeFormat('en-US', offsetOptions);
      // Every 7 h 13 min 17 s over two years: every hour of the day, and every DST change.
      for (let at = Date.UTC(2026, 0, 1); at < Date.UTC(2028, 0, 1); at += 26_000_000 + 997) {
        const date = new Date(at);
        assert.deepEqual(
          fieldsOf(fields.formatToParts(date)),
          fieldsOf(realFields.formatToParts(date)),
          `${zone} ${date.toISOString()}`,
        );
        assert.equal(
          offsetOf(offset.formatToParts(date)),
          offsetOf(realOffset.formatToParts(date)),
          `${zone} ${date.toISOString()}`,
        );
      }
    }
  });

  test('hands any other request to the real Intl.DateTimeFormat', () => {
    const others: [string, Intl.DateTimeFormatOptions][] = [
      ['en-US', { ...fieldsOptions, timeZone: 'Asia/Tokyo' }],
      ['en-US', { ...offsetOptions, timeZone: 'America/Chicago' }],
      ['de-DE', fieldsOptions],
      ['en-US', { ...fieldsOptions, era: 'short' }],
      ['en-US', { year: 'numeric' }],
    ];
    for (const [locale, options] of others) {
      assert.ok(new cronIntl.DateTimeFormat(locale, options) instanceof Intl.DateTimeFormat);
    }

    const date = new Date(Date.UTC(2026, 5, 1, 12));
    const local = new cronIntl.DateTimeFormat('en-US', fieldsOptions);
    assert.equal(local.format(date), new Intl.DateTimeFormat('en-US', fieldsOptions).format(date));
    assert.equal(cronIntl.NumberFormat, Intl.NumberFormat);
    assert.throws(() => local.formatToParts(Number.NaN), RangeError);
  });

  describe('bundled into node-cron', async () => {
    const temp = await makeTempDir('ctrvol-cron-intl');
    after(temp.cleanup);
    /** node-cron bundled alone, with or without the plugin of scripts/build.mjs. */
    const bundle = async (name: string, plugins: Plugin[]) => {
      const outfile = path.join(temp.path, `${name}.mjs`);
      await build({
        stdin: {
          contents: "export { createTask } from 'node-cron';",
          resolveDir: path.resolve(import.meta.dirname, '../..'),
          sourcefile: 'cron-entry.js',
        },
        outfile,
        bundle: true,
        platform: 'node',
        format: 'esm',
        logLevel: 'warning',
        plugins,
      });
      return pathToFileURL(outfile).href;
    };
    const [asPublished, asBuilt] = [
      await bundle('published', []),
      await bundle('built', [cronLocalTime]),
    ];
    // node-cron keeps each Intl.DateTimeFormat it makes, and one made in another zone keeps
    // that zone: a fresh copy of the module for each zone (a query makes a new module).
    const load = async (url: string, zone: string) =>
      (await import(`${url}?zone=${zone}`)) as typeof import('node-cron');
    const plan = (
      api: typeof import('node-cron'),
      expression: string,
      count: number,
      options = {},
    ) =>
      api
        .createTask(expression, () => undefined, options)
        .getNextRuns(count)
        .map((date) => date.toISOString());

    test('plans the same runs as node-cron as published, without Intl.DateTimeFormat', async (t) => {
      t.mock.timers.enable({ apis: ['Date'] });
      for (const zone of zones) {
        useZone(zone);
        const published = await load(asPublished, zone);
        const built = await load(asBuilt, zone);
        for (const start of starts) {
          for (const expression of expressions) {
            t.mock.timers.setTime(Date.parse(start));
            const expected = plan(published, expression, 30);
            const real = Intl.DateTimeFormat;
            const stub = mock.method(Intl, 'DateTimeFormat', function refuse() {
              throw new Error('Intl.DateTimeFormat called');
            });
            let planned: string[];
            try {
              planned = plan(built, expression, 30);
            } finally {
              stub.mock.restore();
            }
            assert.equal(Intl.DateTimeFormat, real);
            assert.deepEqual(planned, expected, `${zone} from ${start}: "${expression}"`);
          }
        }
      }
    });

    test('keeps the real Intl.DateTimeFormat for a schedule with its own time zone', async (t) => {
      t.mock.timers.enable({ apis: ['Date'], now: Date.parse(starts[1] as string) });
      useZone('UTC');
      const options = { timezone: 'Europe/Berlin' };

      assert.deepEqual(
        plan(await load(asBuilt, 'own'), '30 2 * * *', 5, options),
        plan(await load(asPublished, 'own'), '30 2 * * *', 5, options),
      );
    });
  });
});
