/**
 * The claim path's view of limits/ (store/limits.ts): which types it may not
 * start now, and the slots and rate tokens a start takes. Like PauseWatch it
 * answers from a cache, so a claim of a type at its limit costs no directory
 * scan and no file read: limits/ and each limited type's directory are read
 * when the first claim starts, at every poll (pollInterval, jittered), and on
 * an inotify event while a type is blocked (a slot freed on this host) or
 * when a limit file changes. A start takes, in order, a running slot of the
 * type (link(2) of our heartbeat, store/limits.ts), a slot of its group, and
 * a rate token (one rename); what it took is a Pass that the claim gives back
 * (the job's rename was lost) or that the job's end releases.
 *
 * A type whose every slot is taken, or whose every rate token was used less
 * than `per` ago, is blocked: ReadyIndex.take skips it until a slot is seen
 * free (our own release, an event, a poll) or the next token's window
 * passes (a timer), so a claim at the limit waits instead of spinning.
 */
import type fs from 'node:fs';
import { DirQueueError } from '../store/errors.js';
import type { Layout } from '../store/layout.js';
import type { LimitSpec } from '../store/limit-spec.js';
import {
  limitsDir,
  linkSlot,
  listTypeDir,
  readLimits,
  unlinkSlot,
  useRateToken,
  type LimitEntry,
} from '../store/limits.js';
import { ensureFlowDir } from '../store/pauses.js';
import { encodeType, LIMIT_FILE, rateTokenName, slotName } from '../store/names.js';
import { inBackground, Poll, watchDir } from './poll.js';

export interface LimitGateHost {
  layout: Layout;
  watch: boolean | 'auto';
  pollInterval: number;
  /** ms to add to Date.now() for the filesystem's clock (the heartbeat measures it). */
  offset: () => number;
  /** Our heartbeat's path and inode (slots are links to it); `fresh`: make it again if its name is gone. */
  heartbeat: (fresh: boolean) => { path: string; ino: number };
  warn: (error: Error) => void;
}

/**
 * What one start took: given back by `release` (every ending) or `unuse` (the start did not happen).
 * Neither throws: a slot whose giving back fails is kept and tried again at every refresh.
 */
export interface Pass {
  readonly type: string;
  release(): void;
  unuse(): void;
}

/** Why a start was refused: its type is at a limit, or its group is. */
export type Refusal = 'type' | 'group';

interface TypeState {
  type: string;
  dir: string;
  spec: LimitSpec;
  /** Slot names (type and group) seen held, ours included. */
  held: Set<string>;
  /**
   * Rate tokens by K: the name and when it was last used (µs, the filesystem's clock), in the order
   * of that time (a use moves its token to the end), so the first is the next to free up.
   */
  tokens: Map<number, { name: string; usedUs: number }>;
  watcher: fs.FSWatcher | undefined;
}

/** No limit on the type: nothing to give back. */
const FREE_PASS: Pass = Object.freeze({ type: '', release() {}, unuse() {} });

export class LimitGate {
  #host: LimitGateHost;
  #types = new Map<string, TypeState>();
  #seen = '';
  /** Encoded types a claim may not start now. */
  #blocked = new Set<string>();
  /** Date.now() at which a rate-blocked type's next token frees up. */
  #validUntil = Infinity;
  #rootWatcher: fs.FSWatcher | undefined;
  readonly #poll: Poll;
  #expiryTimer: NodeJS.Timeout | undefined;
  #refreshQueued = false;
  #listeners = new Set<() => void>();
  #warned = new Set<string>();
  /** Slots whose giving back failed (EIO, ...): tried again at every refresh. */
  #owed: { dir: string; name: string; ino: number }[] = [];
  #closed = false;
  /** The last refresh failed before it read everything: the next claim reads again (catchUp). */
  #incomplete = false;

  constructor(host: LimitGateHost) {
    this.#host = host;
    this.#poll = new Poll(host.pollInterval, () => this.#background());
  }

  start(): void {
    this.#poll.start();
    this.refresh();
  }

  close(): void {
    this.#closed = true;
    this.#rootWatcher?.close();
    for (const state of this.#types.values()) state.watcher?.close();
    this.#poll.stop();
    clearTimeout(this.#expiryTimer);
    this.#notify();
    this.#listeners.clear();
  }

  /** Called whenever a blocked type may start again. Returns a remover. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Whether any type has a limit (a claim without one needs no Pass). */
  get limited(): boolean {
    return this.#types.size > 0;
  }

  /** The encoded types with a groupConcurrency. */
  groupLimited(): string[] {
    return [...this.#types].filter(([, state]) => state.spec.groupConcurrency !== undefined).map(([type]) => type);
  }

  /** The encoded types at a limit now (a cached set; recomputed when a rate window passes). */
  blocked(): ReadonlySet<string> {
    if (Date.now() >= this.#validUntil) this.#computeBlocked();
    return this.#blocked;
  }

  /**
   * Take what a start of a job of `encodedType` (group `tag`, '' for none) needs, or say which limit
   * refuses it (the type is then blocked, or the caller parks the group).
   */
  enter(encodedType: string, tag: string): Pass | Refusal {
    const state = this.#types.get(encodedType);
    if (state === undefined) return FREE_PASS;
    const { spec } = state;
    const taken: { name: string; ino: number }[] = [];
    const giveBack = (): void => {
      for (const slot of taken) this.#giveBack(state, slot.name, slot.ino);
    };
    if (spec.concurrency !== undefined) {
      const slot = this.#takeSlot(state, spec.concurrency, undefined);
      if (slot === undefined) {
        this.#block(encodedType);
        return 'type';
      }
      taken.push(slot);
    }
    let token: { k: number; from: string; to: string; usedUs: number; before: number } | undefined;
    try {
      if (spec.groupConcurrency !== undefined && tag !== '') {
        const slot = this.#takeSlot(state, spec.groupConcurrency, tag);
        if (slot === undefined) {
          giveBack();
          return 'group';
        }
        taken.push(slot);
      }
      if (spec.rate !== undefined) {
        token = this.#useToken(state, spec.rate.max, spec.rate.per);
        if (token === undefined) {
          giveBack();
          this.#block(encodedType);
          return 'type';
        }
      }
    } catch (error) {
      giveBack(); // a slot taken before the step that failed (EIO, ...) is not kept
      throw error;
    }
    let settled = false;
    return {
      type: state.type,
      release: () => {
        if (settled) return;
        settled = true;
        giveBack();
      },
      unuse: () => {
        if (settled) return;
        settled = true;
        giveBack();
        if (token === undefined) return;
        try {
          if (!useRateToken(state.dir, token.to, token.from)) return;
        } catch (error) {
          this.#host.warn(error as Error); // the token stays used: one start fewer in its window, nothing more
          return;
        }
        state.tokens.set(token.k, { name: token.from, usedUs: token.before });
        // back in its place by time (rare: a claim lost after its token was used)
        state.tokens = new Map([...state.tokens].sort((a, b) => a[1].usedUs - b[1].usedUs));
      },
    };
  }

  /** Read limits/ again if the last reading failed half-way (EIO, ...): a claim then starts from a whole view. */
  catchUp(): void {
    if (this.#incomplete) this.refresh();
  }

  /** Read limits/ and every limited type's directory again; notifies when a blocked type may start. */
  refresh(): void {
    this.#incomplete = true; // until this reading is whole
    this.#payDebts();
    const { limits, problems } = readLimits(this.#host.layout);
    for (const problem of problems) this.#warnOnce(problem.name, problem.reason);
    const seen = limits.map((l) => `${l.dir}\0${l.ino}\0${l.mtimeMs}`).join('\n');
    if (seen !== this.#seen) {
      this.#seen = seen;
      this.#setLimits(limits);
    }
    if (this.#rootWatcher === undefined && !this.#closed) this.#rootWatcher = this.#watch(limitsDir(this.#host.layout));
    for (const state of this.#types.values()) this.#refreshType(state);
    this.#incomplete = false;
    this.#computeBlocked();
    this.#notify();
  }

  #setLimits(limits: readonly LimitEntry[]): void {
    const next = new Map<string, TypeState>();
    for (const entry of limits) {
      const encoded = encodeType(entry.type);
      const old = this.#types.get(encoded);
      next.set(encoded, {
        type: entry.type,
        dir: entry.dir,
        spec: entry.limit,
        held: old?.held ?? new Set<string>(),
        tokens: old?.tokens ?? new Map<number, { name: string; usedUs: number }>(),
        watcher: old?.watcher,
      });
    }
    for (const [encoded, state] of this.#types) if (!next.has(encoded)) state.watcher?.close();
    this.#types = next;
  }

  #refreshType(state: TypeState): void {
    const listing = listTypeDir(state.dir);
    state.held = new Set(listing.slots.map((s) => s.name));
    state.tokens = new Map<number, { name: string; usedUs: number }>();
    // latest last: of two names of one K (a sweep deletes the earlier) the later use counts
    for (const t of listing.tokens.sort((a, b) => a.usedUs - b.usedUs)) {
      state.tokens.delete(t.k);
      state.tokens.set(t.k, { name: t.name, usedUs: t.usedUs });
    }
    if (state.watcher === undefined && !this.#closed) {
      state.watcher = this.#watch(state.dir, (file) => {
        if (file === LIMIT_FILE || this.#blocked.size > 0) this.#queueRefresh();
      });
    }
  }

  /**
   * A free slot among 0..count-1 (of group `tag`), taken by one link(2); undefined when every one is
   * held, or when `count` or more are (slots above a limit that was lowered, still running).
   */
  #takeSlot(state: TypeState, count: number, tag: string | undefined): { name: string; ino: number } | undefined {
    if (heldCount(state.held, tag) >= count) return undefined;
    for (let k = 0; k < count; k++) {
      const name = slotName(k, tag);
      if (state.held.has(name)) continue;
      const heartbeat = this.#host.heartbeat(false);
      let won: boolean;
      try {
        won = linkSlot(heartbeat.path, state.dir, name);
      } catch (error) {
        if ((error as DirQueueError).code !== 'ENOENT') throw error;
        // the type's directory went (a limit cleared and set again) or our heartbeat's name did: make them, once
        ensureFlowDir(this.#host.layout, limitsDir(this.#host.layout));
        ensureFlowDir(this.#host.layout, state.dir);
        const again = this.#host.heartbeat(true);
        won = linkSlot(again.path, state.dir, name);
        state.held.add(name);
        if (won) return { name, ino: again.ino };
        continue;
      }
      state.held.add(name);
      if (won) return { name, ino: heartbeat.ino };
    }
    return undefined;
  }

  /** Use the least recently used rate token, if its window has passed; undefined when none has. */
  #useToken(
    state: TypeState,
    max: number,
    per: number,
  ): { k: number; from: string; to: string; usedUs: number; before: number } | undefined {
    const nowUs = Math.floor((Date.now() + this.#host.offset()) * 1000);
    for (;;) {
      const next = firstToken(state.tokens, max);
      if (next === undefined || next.usedUs + windowUs(per) > nowUs) return undefined;
      const to = rateTokenName(next.k, nowUs);
      const won = useRateToken(state.dir, next.name, to);
      state.tokens.delete(next.k); // to the end: used now, by us or (lost) by another, whose name the next look reads
      state.tokens.set(next.k, { name: won ? to : next.name, usedUs: nowUs });
      if (won) return { k: next.k, from: next.name, to, usedUs: nowUs, before: next.usedUs };
    }
  }

  #giveBack(state: TypeState, name: string, ino: number): void {
    try {
      unlinkSlot(state.dir, name, ino);
      state.held.delete(name);
      if (name.startsWith('g.')) {
        this.#notify(); // a parked group may start again
      } else if (this.#blocked.has(encodeType(state.type))) {
        this.#computeBlocked();
        this.#notify();
      }
    } catch (error) {
      this.#owed.push({ dir: state.dir, name, ino });
      this.#host.warn(error as Error);
    }
  }

  #payDebts(): void {
    const owed = this.#owed;
    this.#owed = [];
    for (const slot of owed) {
      try {
        unlinkSlot(slot.dir, slot.name, slot.ino);
      } catch (error) {
        this.#owed.push(slot);
        this.#host.warn(error as Error);
      }
    }
  }

  #block(encodedType: string): void {
    this.#blocked.add(encodedType);
    this.#computeBlocked();
  }

  /** Which types are at a limit by the cache, and when the next rate window passes. */
  #computeBlocked(): void {
    const now = Date.now();
    const nowUs = (now + this.#host.offset()) * 1000;
    let next = Infinity;
    const blocked = new Set<string>();
    for (const [encoded, state] of this.#types) {
      const { concurrency, rate } = state.spec;
      if (concurrency !== undefined) {
        let free = false;
        for (let k = 0; k < concurrency && !free; k++) free = !state.held.has(slotName(k));
        if (heldCount(state.held, undefined) >= concurrency) free = false;
        if (!free) {
          blocked.add(encoded);
          continue;
        }
      }
      if (rate !== undefined) {
        const first = firstToken(state.tokens, rate.max);
        const soonest = first === undefined ? Infinity : first.usedUs + windowUs(rate.per);
        if (soonest > nowUs) {
          blocked.add(encoded);
          if (Number.isFinite(soonest)) next = Math.min(next, now + (soonest - nowUs) / 1000);
        }
      }
    }
    this.#blocked = blocked;
    this.#validUntil = next;
    clearTimeout(this.#expiryTimer);
    if (Number.isFinite(next) && !this.#closed) {
      this.#expiryTimer = setTimeout(
        () => {
          this.#computeBlocked();
          this.#notify();
        },
        Math.max(1, Math.ceil(next - now) + 1),
      ).unref();
    }
  }

  /** Watch `dir` (no limits/ yet, a shared filesystem, inotify limits: the polls find what changes). */
  #watch(dir: string, onEvent: (file: string | null) => void = () => this.#queueRefresh()): fs.FSWatcher | undefined {
    return watchDir(dir, this.#host.watch, onEvent);
  }

  #queueRefresh(): void {
    if (this.#refreshQueued || this.#closed) return;
    this.#refreshQueued = true;
    setImmediate(() => {
      this.#refreshQueued = false;
      this.#background();
    });
  }

  #background(): void {
    if (!this.#closed)
      inBackground(
        () => this.refresh(),
        (error) => this.#host.warn(error),
      );
  }

  #warnOnce(name: string, reason: string): void {
    const key = `${name}\0${reason}`;
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    const { layout } = this.#host;
    this.#host.warn(
      new DirQueueError(
        'EBADFILE',
        `limits/${name} is not obeyed as a limit: ${reason}; fix it or set the limit again (dirq limit ${layout.root} TYPE ...), or remove it`,
      ),
    );
  }

  #notify(): void {
    for (const listener of [...this.#listeners]) listener();
  }
}

/**
 * How long after its last use a rate token may be used again, µs: `per`, and a margin of per/20 (at
 * most 25 ms) for the error of each process's view of the filesystem's clock (a file's mtime has the
 * kernel tick's granularity, up to 4 ms here; another host reads its server's clock through its
 * heartbeat) and for the moment between a token's rename and the job's start in the processor.
 */
function windowUs(per: number): number {
  return (per + Math.min(per / 20, 25)) * 1000;
}

/** The token used least recently among K below `max` (the first in `tokens`' order). */
function firstToken(
  tokens: ReadonlyMap<number, { name: string; usedUs: number }>,
  max: number,
): { k: number; name: string; usedUs: number } | undefined {
  for (const [k, t] of tokens) if (k < max) return { k, ...t };
  return undefined;
}

/** How many of `held` are slots of the type (`tag` undefined) or of the group tagged `tag`. */
function heldCount(held: ReadonlySet<string>, tag: string | undefined): number {
  let n = 0;
  const prefix = tag === undefined ? undefined : `g.${tag}.`;
  for (const name of held) if (prefix === undefined ? !name.startsWith('g.') : name.startsWith(prefix)) n++;
  return n;
}
