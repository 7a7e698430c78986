import type { ColdStartResult } from './cold-start.js';
import { getMedianByKey, getSummary, type Summary } from './stats.js';
import type { RunSample, Variant, VariantName } from './variants.js';

export interface Target {
  name: string;
  value: number;
  limit: number;
  unit: '×' | 'ms';
  met: boolean;
}

export interface StoreInfo {
  bytes: number;
  entries: number;
  images: number;
  seedMs: number;
}

export interface BenchSummary {
  wallMs: Record<VariantName, Summary>;
  /** Wall time of ctrvol setup minus its commandMs: the figure the target is about. */
  overheadMs: Summary;
  /** The same for a first run on the machine, without a code cache. */
  firstOverheadMs: Summary;
  /** ctrvol's own CPU time, start-up included, also where it overlaps a child. */
  cpuMs: Summary;
  /** Wall time minus child time counted once where children overlap: a cross-check. */
  overheadUnionMs: Summary;
  /** commandMs minus child time counted once: what commandMs counts twice. */
  overlapMs: Summary;
  startupMs: Summary;
  /** Median over runs of each child program's total, largest first. */
  ctrvolCommands: [string, number][];
  ctrvolCalls: [string, number][];
  ctrvolSteps: [string, number][];
  ctrvolGaps: [string, number][];
  phases: Record<'recipe' | 'baseline', [string, number][]>;
  /** ctrvol ÷ baseline within each round: shows whether the ratio holds or is one lucky run. */
  roundRatios: number[];
  targets: Target[];
}

const limits = { setupRatio: 1.2, overheadMs: 100, coldStartRatio: 1.5 };

export function getBenchSummary(samples: RunSample[], coldStart: ColdStartResult): BenchSummary {
  const of = (name: VariantName) => samples.filter((sample) => sample.variant === name);
  const wall = (name: VariantName) => getSummary(of(name).map((sample) => sample.wallMs));
  const withDetail = (name: VariantName) =>
    of(name).flatMap((sample) => (sample.ctrvol === undefined ? [] : [sample]));
  const details = withDetail('ctrvol');
  const wallMs = {
    ctrvol: wall('ctrvol'),
    'ctrvol-first': wall('ctrvol-first'),
    recipe: wall('recipe'),
    baseline: wall('baseline'),
  };
  const getOverhead = (runs: RunSample[]) =>
    getSummary(runs.map((s) => s.wallMs - (s.ctrvol?.commandMs ?? 0)));
  const overheadMs = getOverhead(details);
  const firstOverheadMs = getOverhead(withDetail('ctrvol-first'));
  const setupRatio = wallMs.ctrvol.median / wallMs.baseline.median;
  const firstRatio = wallMs['ctrvol-first'].median / wallMs.baseline.median;
  const roundRatios = of('ctrvol').flatMap((sample) => {
    const baseline = of('baseline').find((other) => other.round === sample.round);
    return baseline === undefined ? [] : [sample.wallMs / baseline.wallMs];
  });

  return {
    wallMs,
    overheadMs,
    firstOverheadMs,
    cpuMs: getSummary(details.map((s) => s.ctrvol?.cpuMs ?? Number.NaN)),
    overheadUnionMs: getSummary(details.map((s) => s.wallMs - (s.ctrvol?.childUnionMs ?? 0))),
    overlapMs: getSummary(
      details.map((s) => (s.ctrvol?.commandMs ?? 0) - (s.ctrvol?.childUnionMs ?? 0)),
    ),
    startupMs: getSummary(details.map((s) => s.ctrvol?.startupMs ?? Number.NaN)),
    ctrvolCommands: getMedianByKey(details.map((s) => s.ctrvol?.byCommand ?? {})),
    ctrvolCalls: getMedianByKey(details.map((s) => s.ctrvol?.callsByCommand ?? {})),
    ctrvolSteps: getMedianByKey(details.map((s) => s.ctrvol?.bySteps ?? {})),
    ctrvolGaps: getMedianByKey(details.map((s) => s.ctrvol?.gaps ?? {})),
    phases: {
      recipe: getMedianByKey(of('recipe').map((sample) => sample.phases)),
      baseline: getMedianByKey(of('baseline').map((sample) => sample.phases)),
    },
    roundRatios,
    targets: [
      getTarget('setup ÷ fair baseline (medians)', setupRatio, limits.setupRatio, '×'),
      getTarget('  first run on the machine', firstRatio, limits.setupRatio, '×'),
      getTarget('agent overhead (wall − commandMs)', overheadMs.median, limits.overheadMs, 'ms'),
      getTarget('  first run on the machine', firstOverheadMs.median, limits.overheadMs, 'ms'),
      getTarget('cold start ÷ node -e 0 (medians)', coldStart.ratio, limits.coldStartRatio, '×'),
    ],
  };
}

function getTarget(name: string, value: number, limit: number, unit: Target['unit']): Target {
  return { name, value, limit, unit, met: value <= limit };
}

function formatMs(ms: number): string {
  return ms >= 100 ? `${Math.round(ms)} ms` : `${ms.toFixed(1)} ms`;
}

function formatValue(value: number, unit: Target['unit']): string {
  return unit === 'ms' ? formatMs(value) : `${value.toFixed(2)}×`;
}

function formatRows(rows: string[][]): string[] {
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((r) => r[column]?.length ?? 0)));
  // The first column reads left to right; numbers line up on their right edge.
  return rows.map((row) =>
    row
      .map((cell, column) =>
        column === 0 ? cell.padEnd(widths?.[column] ?? 0) : cell.padStart(widths?.[column] ?? 0),
      )
      .join('   ')
      .trimEnd(),
  );
}

function formatBreakdown(
  entries: [string, number][],
  calls?: [string, number][],
  floorMs = 0.5,
): string {
  const count = new Map(calls ?? []);
  return entries
    .filter(([, ms]) => ms >= floorMs)
    .map(([name, ms]) => {
      const times = count.get(name);
      return `${name} ${Math.round(ms)}${times !== undefined && times > 1 ? ` (${times}×)` : ''}`;
    })
    .join(', ');
}

// commandMs adds up each child's duration, so children that run side by side count twice and
// wall − commandMs comes out lower than the time no child was running.
function formatOverlapNote(overlap: Summary): string[] {
  return overlap.median < 10
    ? []
    : [
        `note: ctrvol's commandMs counts ${formatMs(overlap.median)} (median) of overlapping ` +
          'children twice, so wall − commandMs understates its own time; see the cross-check',
      ];
}

export interface ReportInput {
  store: StoreInfo;
  rounds: number;
  warmup: number;
  backing: 'disk' | 'tmpfs';
  load: { atStart: number; atEnd: number };
  variantList: readonly Variant[];
  summary: BenchSummary;
  coldStart: ColdStartResult;
}

export function formatReport(input: ReportInput): string {
  const { store, summary, coldStart } = input;
  const letters = ['A', 'B', 'C', 'D', 'E', 'F'];
  const mb = (store.bytes / 1e6).toFixed(1);
  const row = (label: string, s: Summary) => [
    label,
    formatMs(s.median),
    formatMs(s.min),
    `${s.runs}`,
  ];
  const rows: string[][] = [['', 'median', 'min', 'runs']];
  input.variantList.forEach((variant, index) => {
    rows.push(row(`${letters[index]}  ${variant.label}`, summary.wallMs[variant.name]));
  });
  const next = (index: number) => letters[input.variantList.length + index];
  rows.push(
    row(`${next(0)}  ctrvol overhead: wall − commandMs`, summary.overheadMs),
    row('   cross-check: wall − child time counted once', summary.overheadUnionMs),
    row('   of which spawn → first log line', summary.startupMs),
    row("   ctrvol's own CPU time (user + sys, start-up included)", summary.cpuMs),
    row('   first run on the machine: wall − commandMs', summary.firstOverheadMs),
    row(`${next(1)}  cold start: node dist/ctrvol.cjs --version`, coldStart.ctrvol),
    row('   cold start: node -e 0', coldStart.node),
  );

  const targetRows = [['target', 'value', 'limit', '']].concat(
    summary.targets.map((t) => [
      t.name,
      formatValue(t.value, t.unit),
      `≤ ${formatValue(t.limit, t.unit)}`,
      t.met ? 'met' : 'MISSED',
    ]),
  );

  return [
    `ctrvol setup bench: 8 GiB sparse loop device (backing file on ${input.backing}), ` +
      `AMI-like store of ${mb} MB in ` +
      `${store.entries} entries (${store.images} images), ${input.rounds} rounds ` +
      `(+${input.warmup} warm-up), variants alternated ` +
      `${letters.slice(0, input.variantList.length).join(' ')}, page cache warm for all`,
    `load average (1 min): ${input.load.atStart.toFixed(2)} at start, ` +
      `${input.load.atEnd.toFixed(2)} at end`,
    '',
    ...formatRows(rows),
    '',
    ...formatRows(targetRows),
    `setup ÷ fair baseline round by round: ` +
      summary.roundRatios.map((ratio) => ratio.toFixed(2)).join(' '),
    ...formatOverlapNote(summary.overlapMs),
    '',
    'where the time goes (medians per run, ms):',
    `  ctrvol children:  ${formatBreakdown(summary.ctrvolCommands, summary.ctrvolCalls)}`,
    `  ctrvol steps:     ${formatBreakdown(summary.ctrvolSteps)}`,
    `  ctrvol, no child running (≥ 5 ms): ${formatBreakdown(summary.ctrvolGaps, [], 5)}`,
    `  fair baseline:    ${formatBreakdown(summary.phases.baseline)}`,
    `  recipe:           ${formatBreakdown(summary.phases.recipe)}`,
  ].join('\n');
}
