import { getUnionLength, type Interval } from './stats.js';

/** What one `ctrvol setup --log-format json --verbose` run says about where its time went. */
export interface CtrvolRunDetail {
  /** The agent's own sum of child durations, from its "setup finished" line. */
  commandMs: number;
  commands: number;
  /** The agent's own figure: its step loop minus commandMs (leaves out Node start-up). */
  ownMs: number;
  /**
   * The agent process's CPU time (user + system, start-up included): its own work, counted also
   * where it ran beside a child, which wall − commandMs leaves out.
   */
  cpuMs: number;
  /** Child time counted once where children overlap, from the `ran X ms=…` debug lines. */
  childUnionMs: number;
  /** From spawn to the first log line: Node start-up, loading the bundle, reading the config. */
  startupMs: number;
  /** From the "setup finished" line to process exit. */
  exitMs: number;
  /** Milliseconds and calls per child program, summed over the run. */
  byCommand: Record<string, number>;
  callsByCommand: Record<string, number>;
  /** Milliseconds per step, from its "started" line to its closing line. */
  bySteps: Record<string, number>;
  /**
   * Stretches with no child running, named by the children they lie between ("spawn → blkid"
   * is start-up): where the agent's own time goes.
   */
  gaps: Record<string, number>;
}

interface NamedInterval extends Interval {
  name: string;
}

function getGaps(children: NamedInterval[], spawnedAt: number, exitedAt: number) {
  const gaps: Record<string, number> = {};
  const add = (key: string, ms: number) => {
    // Log times have millisecond resolution: a millisecond or two is rounding, not work.
    if (ms >= 2) {
      gaps[key] = (gaps[key] ?? 0) + ms;
    }
  };
  let coveredUntil = spawnedAt;
  let last = 'spawn';
  for (const child of [...children].sort((a, b) => a.start - b.start)) {
    add(`${last} → ${child.name}`, child.start - coveredUntil);
    if (child.end > coveredUntil) {
      coveredUntil = child.end;
      last = child.name;
    }
  }

  add(`${last} → exit`, exitedAt - coveredUntil);
  return gaps;
}

interface LogLine {
  time?: string;
  msg?: string;
  step?: string;
  ms?: number;
  commandMs?: number;
  commands?: number;
  ownMs?: number;
  cpuMs?: number;
}

function parseLines(stderr: string): LogLine[] {
  const lines: LogLine[] = [];
  for (const text of stderr.split('\n')) {
    if (!text.startsWith('{')) {
      continue;
    }

    try {
      lines.push(JSON.parse(text) as LogLine);
    } catch {
      // A line cut by a crash is not evidence of anything; the exit code reports the crash.
    }
  }

  return lines;
}

/**
 * Reads the run's JSON log. `spawnedAt` and `exitedAt` are wall-clock epoch milliseconds taken
 * by the bench around the child, comparable with the ISO times pino writes (to the millisecond).
 */
export function getCtrvolRunDetail(
  stderr: string,
  spawnedAt: number,
  exitedAt: number,
): CtrvolRunDetail {
  const lines = parseLines(stderr);
  const finished = lines.find((line) => line.msg?.startsWith('setup finished') === true);
  if (finished?.commandMs === undefined || finished.time === undefined) {
    throw new Error('ctrvol setup logged no "setup finished" line with commandMs');
  }

  const byCommand: Record<string, number> = {};
  const callsByCommand: Record<string, number> = {};
  const intervals: NamedInterval[] = [];
  const stepStarts = new Map<string, number>();
  const bySteps: Record<string, number> = {};
  for (const line of lines) {
    const at = line.time === undefined ? Number.NaN : Date.parse(line.time);
    const ran = /^ran (\S+)$/.exec(line.msg ?? '');
    if (ran !== null && line.ms !== undefined) {
      const name = ran[1] as string;
      byCommand[name] = (byCommand[name] ?? 0) + line.ms;
      callsByCommand[name] = (callsByCommand[name] ?? 0) + 1;
      intervals.push({ name, start: at - line.ms, end: at });
    } else if (line.step !== undefined && line.msg === 'started') {
      stepStarts.set(line.step, at);
    } else if (line.step !== undefined && isStepClosing(line.msg ?? '')) {
      bySteps[line.step] = at - (stepStarts.get(line.step) ?? at);
    }
  }

  const first = lines.find((line) => line.time !== undefined);
  return {
    commandMs: finished.commandMs,
    commands: finished.commands ?? 0,
    ownMs: finished.ownMs ?? Number.NaN,
    cpuMs: finished.cpuMs ?? Number.NaN,
    childUnionMs: getUnionLength(intervals),
    startupMs: Date.parse(first?.time ?? finished.time) - spawnedAt,
    exitMs: exitedAt - Date.parse(finished.time),
    byCommand,
    callsByCommand,
    bySteps,
    gaps: getGaps(intervals, spawnedAt, exitedAt),
  };
}

function isStepClosing(message: string): boolean {
  return /^(finished in|already done|planned in|failed after)/.test(message);
}
