/** The names pause and cancel add to the codec (src/store/names.ts): round trips, and what is no such name. */
import { describe, expect, it } from 'vitest';
import { DirQueueError } from '../dist/index.js';
import {
  cancelName,
  isLibraryTmpName,
  NameMaker,
  parseCancelName,
  parsePauseName,
  pauseName,
  pauseTmpName,
  tmpWriterOf,
} from '../dist/store/names.js';

describe('pause names', () => {
  it('round-trip every type, the whole queue as @all, a leading dot as %2E', () => {
    for (const type of ['send', 'mail/out', 'é', '.hidden', '..', 'a.b-c_d', '%41', 'x'.repeat(120)]) {
      const name = pauseName(type);
      expect(name.startsWith('.'), name).toBe(false);
      expect(parsePauseName(name), name).toEqual({ type });
    }
    expect(pauseName(undefined)).toBe('@all');
    expect(parsePauseName('@all')).toEqual({ type: undefined });
    expect(pauseName('.hidden')).toBe('%2Ehidden');
  });

  it('refuse what no pause is named: dot files, set-aside names, non-canonical spellings, other @ names', () => {
    for (const name of ['.all', '.x', 'x~', 'a%2', 'a%2f', '@alll', 'a b', 'mail%2Fout%', '%2E%2E.'])
      expect(parsePauseName(name), name).toBeUndefined();
    expect(() => pauseName('')).toThrow(DirQueueError);
    expect(() => pauseName('x'.repeat(121))).toThrow(/too long/);
  });

  it('a pause temp is a library tmp/ name that carries its writer', () => {
    const owner = new NameMaker().owner;
    const name = pauseTmpName(owner);
    expect([isLibraryTmpName(name), tmpWriterOf(name)]).toEqual([true, owner]);
  });
});

describe('cancel names', () => {
  it('a request is the active name of the claim to cancel', () => {
    const names = new NameMaker();
    const id = names.id(50, 't');
    const claim = names.claim();
    const name = cancelName(id, claim);
    expect(name).toBe(`${id}@${claim}`);
    expect(parseCancelName(name)).toMatchObject({ id, claim: { claim, owner: names.owner } });
    expect(parseCancelName(id)).toBeUndefined();
  });
});
