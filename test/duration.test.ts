import { describe, expect, it } from 'vitest';
import { formatAge, parseDuration } from '../dist/store/duration.js';
import { DirQueueError } from '../dist/index.js';

describe('parseDuration', () => {
  it.each([
    ['100ms', 100],
    ['30s', 30_000],
    ['5m', 300_000],
    ['2h', 7_200_000],
    ['7d', 604_800_000],
    ['0s', 0],
    ['1.5s', 1500],
    ['.5s', 500],
    ['1h30m', 5_400_000],
    ['4m12s', 252_000],
    ['1d2h3m4s5ms', 93_784_005],
    ['250', 250],
    ['0', 0],
    ['  10s ', 10_000],
    ['1.4', 1],
  ])('%s is %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it('takes a non-negative number of ms as is (rounded)', () => {
    expect(parseDuration(1500)).toBe(1500);
    expect(parseDuration(2.6)).toBe(3);
  });

  it.each([
    '',
    ' ',
    '10x',
    's',
    '-5s',
    '-1',
    '5 m',
    '1m30',
    '30m1h',
    '1s1s',
    '1e3',
    'NaN',
    '10S',
    '5min',
    'Infinity',
    '1h 30m',
  ])('rejects %j with EBADOPTION and an example of what works', (text) => {
    const error = catchError(() => parseDuration(text, '--delay'));
    expect(error).toBeInstanceOf(DirQueueError);
    expect(error).toMatchObject({ code: 'EBADOPTION' });
    expect(error.message).toContain('--delay must be a duration like 100ms, 30s, 5m, 2h, 7d');
    expect(error.message).toContain(JSON.stringify(text));
  });

  it('says what is wrong in a compound duration', () => {
    expect(catchError(() => parseDuration('30m1h')).message).toContain('largest first');
    expect(catchError(() => parseDuration('10sx')).message).toContain('unexpected "x"');
  });

  it.each([-1, NaN, Infinity])('rejects the number %s', (value) => {
    expect(() => parseDuration(value)).toThrow(expect.objectContaining({ code: 'EBADOPTION' }));
  });

  it('round-trips what formatAge prints', () => {
    for (const ms of [850, 3000, 252_000, 2_520_000, 7_500_000, 108_000_000, 442_800_000, 1_036_800_000]) {
      expect(parseDuration(formatAge(ms))).toBe(ms);
    }
  });
});

describe('formatAge', () => {
  it.each([
    [0, '0ms'],
    [999, '999ms'],
    [1000, '1s'],
    [3_400, '3s'],
    [59_999, '59s'],
    [60_000, '1m'],
    [252_000, '4m12s'],
    [599_000, '9m59s'],
    [600_000, '10m'],
    [3_599_000, '59m'],
    [3_600_000, '1h'],
    [7_500_000, '2h5m'],
    [28_800_000, '8h'],
    [172_799_000, '47h'],
    [172_800_000, '2d'],
    [442_800_000, '5d3h'],
    [691_200_000, '8d'],
    [86_400_000 * 400, '400d'],
  ])('%d ms is %s', (ms, text) => {
    expect(formatAge(ms)).toBe(text);
  });

  it('marks a time still to come with a minus, and NaN as unknown', () => {
    expect(formatAge(-30_000)).toBe('-30s');
    expect(formatAge(Number.NaN)).toBe('-');
  });
});

function catchError(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a throw');
}
