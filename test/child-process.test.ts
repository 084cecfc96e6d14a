/** The stderr tail of a child process (pool/child-process.ts): lines as written, whatever the pipe's chunks. */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { StderrTail } from '../dist/pool/child-process.js';

describe('StderrTail', () => {
  it('joins a line split across chunks (mid-line, mid-character), keeps the last N, the unfinished one too', () => {
    const stream = new PassThrough();
    const tail = new StderrTail(stream, 3);
    const accent = Buffer.from('é');
    for (const chunk of [
      Buffer.from('first\nValue'),
      Buffer.from('Error: caf'),
      accent.subarray(0, 1),
      Buffer.concat([accent.subarray(1), Buffer.from('\n\n  \nlast, no newline')]),
    ]) {
      stream.write(chunk);
    }
    expect(tail.lines).toEqual(['first', 'ValueError: café', 'last, no newline']);
    stream.write('\nJavaScript heap out');
    expect(tail.outOfMemory).toBe(false);
    stream.write(' of memory');
    expect(tail.outOfMemory).toBe(true); // said before its newline: the child died mid-line
    expect(tail.lines).toEqual(['ValueError: café', 'last, no newline', 'JavaScript heap out of memory']);
  });
});
