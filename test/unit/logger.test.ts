import assert from 'node:assert/strict';
import { fstatSync } from 'node:fs';
import { describe, test } from 'node:test';
import { createLogger } from '../../agent/log/logger.js';

function capture(format: 'text' | 'json', journal: boolean) {
  const lines: string[] = [];
  const logger = createLogger({ format, level: 'debug', journal, write: (l) => lines.push(l) });
  return { logger, lines };
}

describe('log lines', () => {
  test('carry journald priorities and the step name when stderr is the journal', () => {
    const { logger, lines } = capture('text', true);
    const step = logger.child({ step: 'format' });

    step.info({ device: '/dev/loop3' }, 'started');
    step.warn('reusing');
    step.error('failed');
    logger.notice('back below the threshold');
    step.debug({ argv: ['mkfs.xfs', '-K'] }, 'running');

    assert.deepEqual(lines, [
      '<6>format: started device=/dev/loop3\n',
      '<4>format: reusing\n',
      '<3>format: failed\n',
      '<5>back below the threshold\n',
      '<7>format: running argv=["mkfs.xfs","-K"]\n',
    ]);
  });

  test('name the level on a terminal, except for plain information', () => {
    const { logger, lines } = capture('text', false);

    logger.info('fine');
    logger.warn({ label: 'has space' }, 'odd');

    assert.deepEqual(lines, ['fine\n', 'WARN odd label="has space"\n']);
  });

  test('are JSON objects with a time and the step when asked for JSON', () => {
    const { logger, lines } = capture('json', false);

    logger.child({ step: 'mount' }).info({ uuid: 'u' }, 'mounted');
    const record = JSON.parse(lines[0] ?? '') as Record<string, unknown>;

    assert.equal(record.msg, 'mounted');
    assert.equal(record.step, 'mount');
    assert.equal(record.uuid, 'u');
    assert.equal(record.level, 30);
    assert.equal(typeof record.time, 'string');
  });
});

describe('journald detection', () => {
  const withStream = (value: string | undefined, body: () => void) => {
    const saved = process.env.JOURNAL_STREAM;
    if (value === undefined) {
      delete process.env.JOURNAL_STREAM;
    } else {
      process.env.JOURNAL_STREAM = value;
    }

    try {
      body();
    } finally {
      if (saved === undefined) {
        delete process.env.JOURNAL_STREAM;
      } else {
        process.env.JOURNAL_STREAM = saved;
      }
    }
  };

  const firstLine = () => {
    const lines: string[] = [];
    createLogger({ format: 'text', level: 'info', write: (line) => lines.push(line) }).info('hi');
    return lines[0];
  };

  test('prefixes priorities only when stderr is the stream JOURNAL_STREAM names', () => {
    const { dev, ino } = fstatSync(2);

    withStream(`${dev}:${ino}`, () => assert.equal(firstLine(), '<6>hi\n'));
    withStream('1:2', () => assert.equal(firstLine(), 'hi\n'));
    withStream(undefined, () => assert.equal(firstLine(), 'hi\n'));
  });
});
