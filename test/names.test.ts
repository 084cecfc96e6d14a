import { createHash } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import {
  activeName,
  checkId,
  CLOCK_FILE,
  counterTmpName,
  delayedName,
  deltaName,
  doneCheckedName,
  encodeKey,
  encodeType,
  groupTag,
  coalesceTag,
  checkCoalesce,
  idCoalesceTag,
  heldBaseName,
  hostToken,
  idGroupTag,
  isActiveNameOf,
  isDelayedNameOf,
  isDoneCheckedNameOf,
  isHeldBaseName,
  isKeyScratchName,
  isLibraryTmpName,
  isLockAsideName,
  isSetAsideName,
  keyScratchName,
  LOCK_FILE,
  lockAsideName,
  lockTmpName,
  NameMaker,
  nowUs,
  parseActiveName,
  parseClaim,
  parseDelayedName,
  parseId,
  parseOwner,
  parseTmpName,
  replacementName,
  scheduledJobId,
  scheduleUnique,
  scratchClockName,
  setAsideName,
  TOTALS_BASE,
  untaggedUnique,
} from '../dist/store/names.js';

describe('the name codec', () => {
  it('round-trips ids with every priority and awkward types', () => {
    const maker = new NameMaker('web1', 4242);
    for (const type of ['email', 'mail/out', '../../etc/passwd', 'ünïcode ✓', 'a.b-c_d', '%41', '@~']) {
      for (const priority of [0, 7, 50, 99]) {
        const id = maker.id(priority, encodeType(type));
        const parsed = parseId(id);
        expect(parsed).toMatchObject({ id, priority, type });
        expect(id).not.toContain('/');
        expect(id).toMatch(/^\d{2}-\d{16}-[a-z0-9]+\.[A-Za-z0-9_.%-]+$/);
      }
    }
  });

  it('never lets a type become a path', () => {
    expect(encodeType('../../x')).toBe('..%2F..%2Fx');
    expect(encodeType('/')).toBe('%2F');
    expect(() => encodeType('')).toThrow(expect.objectContaining({ code: 'EBADTYPE' }));
    expect(() => encodeType(42)).toThrow(expect.objectContaining({ code: 'EBADTYPE' }));
    expect(() => encodeType('x'.repeat(121))).toThrow(/too long/);
  });

  it('accepts only the canonical spelling of a type', () => {
    expect(parseId('50-1763830000000000-abc.%41')).toBeUndefined(); // 'A' must be written A
    expect(parseId('50-1763830000000000-abc.%2f')).toBeUndefined(); // lower-case hex
    expect(parseId('50-1763830000000000-abc.%2F')?.type).toBe('/');
    expect(parseId('50-1763830000000000-abc.%FF')).toBeUndefined(); // not UTF-8
  });

  it('rejects names that do not match the grammar', () => {
    for (const name of [
      '',
      'README',
      '.hidden',
      '5-1763830000000000-a.t',
      '50-176383000000000-a.t',
      '50-1763830000000000-.t',
      '50-1763830000000000-a',
      '50-1763830000000000-a.',
      '50-1763830000000000-a_b.t',
      '50-1763830000000000-a.t~',
      'x50-1763830000000000-a.t',
    ]) {
      expect(parseId(name), name).toBeUndefined();
    }
    expect(() => checkId('nope')).toThrow(expect.objectContaining({ code: 'EBADID' }));
  });

  it('sorts ids by priority, then time, then the unique part (I5)', () => {
    const ids = [
      '50-1763830000000002-a.t',
      '10-1763830000000009-a.t',
      '50-1763830000000001-b.t',
      '50-1763830000000001-a.z',
      '99-1000000000000000-a.t',
      '00-1763830000000009-a.t',
    ];
    const byBytes = [...ids].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    const byMeaning = [...ids].sort((a, b) => {
      const pa = parseId(a)!;
      const pb = parseId(b)!;
      return (
        pa.priority - pb.priority ||
        pa.enqueuedUs - pb.enqueuedUs ||
        (pa.unique < pb.unique ? -1 : pa.unique > pb.unique ? 1 : 0)
      );
    });
    expect(byBytes).toEqual(byMeaning);
  });

  it('makes strictly increasing ids within one maker, even for one microsecond or a clock step back', () => {
    const times = [1000, 1000, 999, 2000];
    const maker = new NameMaker('h', 1, () => times.shift()!);
    const ids = [maker.id(50, 't'), maker.id(50, 't'), maker.id(50, 't'), maker.id(50, 't')];
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(4);
  });

  it('gives a delayed job its due time without moving the times of later jobs (Correctness 1)', () => {
    let now = 1_000_000;
    const maker = new NameMaker('h', 1, () => now);
    const hourLater = now + 3_600_000_000;
    const delayed = maker.id(50, 'report', hourLater);
    now += 5;
    const plain = maker.id(50, 'email');
    expect(parseId(delayed)!.enqueuedUs).toBe(hourLater);
    expect(parseId(plain)!.enqueuedUs).toBe(now); // enqueue time, not an hour ahead
    // ids that share a time stay distinct, and in the order they were made
    now = hourLater;
    const same = [maker.id(50, 'report', hourLater), maker.id(50, 'report', hourLater), maker.id(50, 'report')];
    expect(new Set([delayed, ...same]).size).toBe(4);
    expect([delayed, same[0], same[1]].sort()).toEqual([delayed, same[0], same[1]]);
    for (const id of [delayed, ...same]) expect(parseId(id)).toMatchObject({ id, priority: 50 });
  });

  it('reads the wall clock, and follows it when it steps (D8)', () => {
    const before = Date.now() * 1000;
    expect(Math.abs(nowUs() - before)).toBeLessThan(1_000_000);
    const real = Date.now.bind(Date);
    const step = vi.spyOn(Date, 'now').mockImplementation(() => real() + 3_600_000); // the wall clock jumps an hour ahead
    try {
      expect(nowUs()).toBeGreaterThanOrEqual(before + 3_599_000_000);
    } finally {
      step.mockRestore();
    }
    expect(nowUs()).toBeLessThan(before + 1_000_000);
  });

  it('round-trips delayed and active names', () => {
    const maker = new NameMaker('web-1', 77);
    const id = maker.id(20, encodeType('report'));
    expect(parseDelayedName(delayedName(1763830060000000, id))).toEqual({ dueUs: 1763830060000000, id });
    const claim = maker.claim();
    expect(parseActiveName(activeName(id, claim))).toEqual({ id, claim: parseClaim(claim) });
    expect(parseClaim(claim)).toEqual({
      claim,
      owner: maker.owner,
      host: 'web-1',
      pid: 77,
      nonce: maker.owner.split('.')[2],
      seq: '0',
    });
    expect(parseOwner(maker.owner)).toEqual({
      owner: maker.owner,
      host: 'web-1',
      pid: 77,
      nonce: maker.owner.split('.')[2],
    });
    expect(parseOwner(claim)).toBeUndefined(); // a claim is an owner and a sequence number
    expect(parseOwner('.lock')).toBeUndefined();
    expect(maker.claim()).not.toBe(claim);
    expect(parseDelayedName(`123~${id}`)).toBeUndefined();
    expect(parseActiveName(`${id}@not a claim`)).toBeUndefined();
  });

  it('round-trips tmp/ names to their job and writer', () => {
    const maker = new NameMaker('web-1', 4242);
    const id = maker.id(7, 'a.b%2Fc');
    expect(parseTmpName(maker.tmpName(id))).toEqual({ id, owner: maker.owner });
    for (const bad of [
      `${id}.tmp`,
      `${id}.web-1.x.abc.tmp`,
      `${id}.web-1.1.abc`,
      'x.web-1.1.abc.tmp',
      `.${id}.web-1.1.abc.tmp`,
    ]) {
      expect(parseTmpName(bad), bad).toBeUndefined();
    }
  });

  it('builds every helper name a sweep may delete in tmp/ as one it knows, and no other', () => {
    const maker = new NameMaker('web-1', 4242);
    const claim = maker.claim();
    const ours = [
      lockTmpName(maker.owner),
      scratchClockName(),
      replacementName('dirqueue.json'),
      counterTmpName(deltaName(maker.owner, 35)),
      counterTmpName(heldBaseName(claim)),
      counterTmpName(heldBaseName(heldBaseName(claim))),
      maker.tmpName(maker.id(50, 'email')),
    ];
    for (const name of ours) expect(isLibraryTmpName(name), name).toBe(true);
    // a user's own dot files and names that only look like ours are never the library's to delete
    for (const name of [
      '.bashrc',
      '.lock',
      '.clock.12',
      `.totals~${maker.owner}`,
      replacementName('notes.txt'),
      '.stale.abcdefgh',
    ]) {
      expect(isLibraryTmpName(name), name).toBe(false);
    }
  });

  it('names helper files so that only their own tests recognise them', () => {
    const claim = new NameMaker('web-1', 1).claim();
    expect(isHeldBaseName(heldBaseName(claim))).toBe(true);
    expect(isHeldBaseName(TOTALS_BASE)).toBe(false);
    expect(isLockAsideName(lockAsideName())).toBe(true);
    expect(isLockAsideName(LOCK_FILE)).toBe(false);
    expect(isKeyScratchName(keyScratchName())).toBe(true);
    expect(isKeyScratchName(encodeKey('.stale.x'))).toBe(false); // a key is never a dot name
    expect(isDoneCheckedNameOf(doneCheckedName('web-1', 'b00t'), 'web-1')).toBe(true);
    expect(isDoneCheckedNameOf(doneCheckedName('web-1-b', 'b00t'), 'web-1')).toBe(false); // another host whose name starts the same
    expect([1, 2, 3].map((n) => setAsideName('junk', n))).toEqual(['junk~', 'junk.2~', 'junk.3~']);
    expect(setAsideName('junk', 2)).toSatisfy(isSetAsideName);
    expect(CLOCK_FILE.startsWith('.')).toBe(true); // helper files in workers/ are dot files: never an owner's heartbeat
  });

  it('tells the delayed and active names of a job from those of another whose id ends or starts the same', () => {
    const maker = new NameMaker('web-1', 1);
    const id = maker.id(50, 'email');
    const longer = `${id.slice(0, -'email'.length)}xemail`; // same prefix, another type
    expect(isDelayedNameOf(delayedName(1, id), id)).toBe(true);
    expect(isDelayedNameOf(delayedName(1, id), longer)).toBe(false);
    expect(isActiveNameOf(activeName(id, maker.claim()), id)).toBe(true);
    expect(isActiveNameOf(activeName(`${id}x`, maker.claim()), id)).toBe(false);
  });

  it('keeps host tokens to the safe alphabet', () => {
    expect(hostToken('db-01.example.com')).toBe('db-01');
    expect(hostToken('weird_host name')).toBe('weird-host-name');
    expect(hostToken('')).toBe('host');
  });
});

describe('coalesce tags in ids (with and without a group tag)', () => {
  it('coalesceTag is 8 of [a-z0-9], the first base-36 digits of the SHA-256 of the key', () => {
    for (const key of ['user-7', 'ünïcode ✓', 'x'.repeat(256)]) {
      const digits = BigInt(`0x${createHash('sha256').update(key).digest('hex')}`)
        .toString(36)
        .padStart(50, '0');
      expect(coalesceTag(key)).toBe(digits.slice(0, 8));
    }
    expect(coalesceTag('user-7')).not.toBe(coalesceTag('user-8'));
  });

  it('NameMaker ends UNIQUE with G+tag then C+tag, at most 32 characters even for a due id; both read back', () => {
    const maker = new NameMaker('web1', 4242);
    const group = groupTag('tenant-42');
    const key = coalesceTag('user-7');
    const cases: [string, string, string][] = [
      [maker.id(50, 'send', undefined, { group, coalesce: key }), group, key],
      [maker.id(7, encodeType('mail/out'), 1_800_000_000_000_000, { group, coalesce: key }), group, key],
      [maker.id(50, 'send', undefined, { coalesce: key }), '', key],
      [maker.id(50, 'send', 1_800_000_000_000_000, { coalesce: key }), '', key],
      [maker.id(50, 'send', undefined, { group }), group, ''],
      [maker.id(50, 'send', undefined, group), group, ''],
      [maker.id(50, 'a.b', undefined, {}), '', ''],
    ];
    for (const [id, g, c] of cases) {
      const parsed = parseId(id);
      expect(parsed, id).toBeDefined();
      expect(parsed!.unique.length).toBeLessThanOrEqual(32);
      expect(idGroupTag(id)).toBe(g);
      expect(idCoalesceTag(id)).toBe(c);
      expect(parsed!.unique).toBe(
        `${untaggedUnique(parsed!.unique)}${g === '' ? '' : `G${g}`}${c === '' ? '' : `C${c}`}`,
      );
    }
    expect(parseId(cases[1]![0])!.unique).toMatch(new RegExp(`^[a-z0-9]{12}G${group}C${key}$`));
    expect(parseId(cases[1]![0])!.unique).toHaveLength(32);
  });

  it('only C plus exactly 8 of [a-z0-9] at the very end is a coalesce tag; a G tag before it still reads', () => {
    const at = (unique: string): string => `50-1763830000000000-${unique}.send`;
    expect(idCoalesceTag(at('abcC01234567'))).toBe('01234567');
    expect(idCoalesceTag(at('abcC0123456'))).toBe(''); // 7 after C
    expect(idCoalesceTag(at('abcc01234567'))).toBe('');
    expect(idCoalesceTag(at('abcG0123456789'))).toBe(''); // a group tag is no coalesce tag
    expect(idGroupTag(at('abcC01234567'))).toBe('');
    expect(idGroupTag(at('abcG0123456789C01234567'))).toBe('0123456789');
    expect(idCoalesceTag(at('abcG0123456789C01234567'))).toBe('01234567');
    expect(untaggedUnique('abcG0123456789C01234567')).toBe('abc');
    expect(untaggedUnique('abcC01234567')).toBe('abc');
  });

  it('checkCoalesce refuses what is not a key with EBADOPTION', () => {
    expect(checkCoalesce('user-7')).toBe('user-7');
    for (const bad of ['', 'x'.repeat(257), 7, null, '\ud800']) {
      expect(() => checkCoalesce(bad)).toThrow(expect.objectContaining({ code: 'EBADOPTION' }));
    }
    expect(() => checkCoalesce(7)).toThrow(/coalesce must be a string/);
  });
});

describe('group tags in ids', () => {
  it('groupTag is 10 of [a-z0-9], the first base-36 digits of the SHA-256 of the group, the same everywhere', () => {
    for (const group of ['tenant-42', 'ünïcode ✓', 'x'.repeat(256), 'a']) {
      const tag = groupTag(group);
      expect(tag).toMatch(/^[a-z0-9]{10}$/);
      const digits = BigInt(`0x${createHash('sha256').update(group).digest('hex')}`)
        .toString(36)
        .padStart(50, '0');
      expect(tag).toBe(digits.slice(0, 10));
    }
    expect(groupTag('tenant-42')).toBe('65q4sbkgzp'); // as FORMAT.md, "Groups", shows it
    expect(groupTag('tenant-42')).not.toBe(groupTag('tenant-43'));
  });

  it('NameMaker ends the unique part with G and the tag, for ready and delayed ids; parseId still reads them', () => {
    const maker = new NameMaker('web1', 4242);
    const tag = groupTag('tenant-42');
    const ready = maker.id(50, 'send', undefined, tag);
    const due = maker.id(7, encodeType('mail/out'), 1_800_000_000_000_000, tag);
    for (const id of [ready, due]) {
      expect(parseId(id)?.unique).toMatch(new RegExp(`^[a-z0-9]+G${tag}$`));
      expect(parseId(id)!.unique.length).toBeLessThanOrEqual(32);
      expect(idGroupTag(id)).toBe(tag);
    }
    expect(parseId(due)).toMatchObject({ priority: 7, type: 'mail/out', enqueuedUs: 1_800_000_000_000_000 });
    expect(idGroupTag(maker.id(50, 'send'))).toBe('');
    expect(idGroupTag(maker.id(50, 'send', 1_800_000_000_000_000))).toBe('');
  });

  it("a hand-written id without a tag has the tag '', and only G plus exactly 10 of [a-z0-9] at the end is one", () => {
    const at = (unique: string): string => `50-1763830000000000-${unique}.send`;
    expect(idGroupTag(at('k3j9x0'))).toBe('');
    expect(idGroupTag(at('myscript4242'))).toBe('');
    expect(idGroupTag(at('abcG0123456789'))).toBe('0123456789');
    expect(idGroupTag(at('G0123456789'))).toBe('0123456789');
    expect(idGroupTag(at('abcG012345678'))).toBe(''); // 9 after G
    expect(idGroupTag(at('abcg0123456789'))).toBe(''); // lower-case g
    expect(idGroupTag(at('abcG01234567A9'))).toBe(''); // upper case in the tag
    expect(idGroupTag(at('abcH0123456789'))).toBe('');
    expect(idGroupTag(`${at('abcG0123456789')}.bak`)).toBe('0123456789'); // the type may hold dots
    expect(idGroupTag('50-1763830000000000-aG0123456789.a.b')).toBe('0123456789');
    expect(untaggedUnique('s0123456789abcdefghijG0123456789')).toBe('s0123456789abcdefghij');
    expect(untaggedUnique('s0123456789abcdefghij')).toBe('s0123456789abcdefghij');
    expect(untaggedUnique('G0123456789')).toBe('G0123456789');
  });

  it("a schedule's job id takes the tag too, and stays a valid id (32 characters of unique)", () => {
    const id = scheduledJobId('nightly', 50, 'report', 1_800_000_000_000_000, groupTag('t'));
    expect(parseId(id)?.unique).toBe(`${scheduleUnique('nightly')}G${groupTag('t')}`);
    expect(parseId(id)!.unique).toHaveLength(32);
    expect(idGroupTag(id)).toBe(groupTag('t'));
    expect(scheduledJobId('nightly', 50, 'report', 1_800_000_000_000_000)).toBe(
      `50-1800000000000000-${scheduleUnique('nightly')}.report`,
    );
  });
});
