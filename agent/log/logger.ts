import { fstatSync, writeSync } from 'node:fs';
import pino from 'pino';

/**
 * One logger is made by the entry point and passed down; each step gets a child that carries
 * its name. Lines go to stderr, written synchronously so that nothing is lost when the entry
 * point exits.
 *
 * pino's transports run in worker threads loaded from separate files, which the single-file
 * bundle does not have, so formatting happens in the destination stream instead.
 */
export type Logger = pino.Logger<'notice'>;

export type LogFormat = 'text' | 'json';

export interface LoggerOptions {
  format: LogFormat;
  level: string;
  /** Where lines go; stderr unless a test captures them. */
  write?: (line: string) => void;
  /** journald reads a `<N>` prefix as the priority; set when stderr is the journal. */
  journal?: boolean;
}

const levelNames: Record<number, string> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  35: 'notice',
  40: 'warn',
  50: 'error',
  60: 'fatal',
};

// syslog priorities, as journald and `systemctl status` colour them.
const syslogPriority: Record<number, number> = { 10: 7, 20: 7, 30: 6, 35: 5, 40: 4, 50: 3, 60: 2 };

const envelopeKeys = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'step', 'v']);

export function createLogger(options: LoggerOptions): Logger {
  const write = options.write ?? ((line: string) => writeSync(2, line));
  const journal = options.journal ?? isStderrTheJournal();
  const stream = {
    write(chunk: string): void {
      write(options.format === 'json' ? chunk : formatText(chunk, journal));
    },
  };

  return pino(
    {
      level: options.level,
      customLevels: { notice: 35 },
      base: undefined,
      timestamp: options.format === 'json' ? pino.stdTimeFunctions.isoTime : false,
    },
    stream,
  );
}

/**
 * systemd sets JOURNAL_STREAM to the device and inode of the journal stream it connected. A
 * child inherits the variable even when its stderr goes elsewhere (cloud-init's user-data runs
 * under cloud-final.service), so the `<N>` prefix is only used when stderr really is that stream.
 */
function isStderrTheJournal(): boolean {
  const stream = process.env.JOURNAL_STREAM;
  if (stream === undefined) {
    return false;
  }

  try {
    const { dev, ino } = fstatSync(2);
    return stream === `${dev}:${ino}`;
  } catch {
    return false;
  }
}

/** A line a person reads: `<6>setup/format: started device=/dev/loop3`. */
function formatText(chunk: string, journal: boolean): string {
  const record = JSON.parse(chunk) as Record<string, unknown>;
  const level = typeof record.level === 'number' ? record.level : 30;
  const step = typeof record.step === 'string' ? `${record.step}: ` : '';
  const fields = Object.entries(record)
    .filter(([key]) => !envelopeKeys.has(key))
    .map(([key, value]) => `${key}=${formatValue(value)}`);
  const message = [String(record.msg ?? ''), ...fields].join(' ');
  const prefix = journal
    ? `<${syslogPriority[level] ?? 6}>`
    : level === 30
      ? ''
      : `${(levelNames[level] ?? 'info').toUpperCase()} `;

  return `${prefix}${step}${message}\n`;
}

function formatValue(value: unknown): string {
  if (typeof value === 'string') {
    return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  }

  if (value !== null && typeof value === 'object' && 'message' in value) {
    return JSON.stringify((value as { message: unknown }).message);
  }

  return JSON.stringify(value);
}
