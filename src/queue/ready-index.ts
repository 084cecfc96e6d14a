/**
 * The in-memory index of ready job ids (the names in queue/), so that a claim
 * never scans the directory: ids are kept per type and per priority in
 * FIFO buckets, sorted by name (= enqueue time within a bucket). A claim looks
 * only at the head of each non-empty bucket of the wanted types, so its cost
 * does not grow with the backlog.
 *
 * Ordering (I5, I8): strict priority then FIFO when `agingStep` is Infinity.
 * Otherwise a job's priority improves by one level per agingStep of waiting,
 * down to 0, the most urgent; the lower effective priority runs first, then
 * the older job. As a time: a job enqueued at t with priority p ranks at
 * max(now, t + p x agingStep), ties to the older. Once it has waited
 * p x agingStep its rank is `now`, which no job enqueued after it can beat,
 * so from then on it waits only for jobs enqueued before it: that is the
 * no-starvation bound README states. Short backlogs still run in priority order.
 *
 * Ranking by t + p x agingStep alone, without the floor at `now`, bounds only
 * how far behind it a later job may be to overtake it: under a stream that
 * outpaces the workers, every urgent job of the p x agingStep after it still
 * ran first (a priority-90 job with agingStep 20 started after 3.4 s, not 1.8 s).
 *
 * The ranks of bucket heads change with `now`, but within a bucket (one type,
 * one priority) the older job always ranks first, so a claim still looks only
 * at the heads.
 *
 * An id whose time is still to come when it is added was made ready early
 * (retry of a delayed job, or a `mv` by hand): ranked by its id it would wait
 * behind every job enqueued before its due time. It ranks instead by when it
 * became ready, the time `readyUs` gives (the file's mtime, which retry sets),
 * under a rank key: the id with that time in place of its own. Buckets hold
 * keys; `#early` maps the keys that are not ids back to their ids.
 *
 * Groups (enqueue's `group`; the id carries the group's tag, names.ts
 * idGroupTag): within a bucket each group has its own FIFO (the jobs of no
 * group are the group ''), and the groups with ready jobs take turns in a
 * rotation: take() serves the head of the front group, then moves that group
 * to the back if it still has jobs. So among the jobs of one type and one
 * priority, a group's backlog delays another group's next job by at most one
 * turn of each group with jobs, however long the backlogs. The head of a
 * bucket, which ranks it against the other priorities and types (ageing
 * above), is the head of its front group; a bucket of one group (no groups at
 * all) is the plain FIFO it always was. A group can be parked (group
 * concurrency, the limits' code): it leaves the rotation lazily (its entry is
 * dropped when it reaches the front, once) and comes back at the back when it
 * is unparked, so a parked group costs takes nothing. A take is O(1)
 * amortised in the number of jobs and of groups.
 *
 * Coalescing (enqueue's `coalesce`; the id carries the key's tag, names.ts
 * idCoalesceTag): beside the buckets, each (type, coalesce tag) with ready
 * jobs has a FIFO of their keys in byte order (priority, then time), so that
 * takeCoalesced() gives the next ready job of one type and key in O(1)
 * amortised, whatever the backlog. Only ids with a coalesce tag are in these
 * FIFOs: a job of no key costs the index what it did before coalescing (one
 * test of its name in add and take), and the jobs of no key are served from
 * the buckets (take's `keyless`). An entry taken by one side stays in the
 * other and is dropped lazily when it reaches the front, as delete() does; a
 * take from the buckets also drops the stale front of its key's FIFO, so the
 * FIFOs hold no more than the ready keyed jobs plus a front of taken ones.
 */
import {
  idCoalesceTag,
  idEncodedType,
  idEnqueuedUs,
  idGroupTag,
  idPriority,
  nowUs,
  withEnqueuedUs,
} from '../store/names.js';

/**
 * How far ahead of this clock an id's time must be for its job to count as
 * made ready early. A job promoted at its due time is not early, yet this
 * clock may read a little behind the one that judged it due (nowUs() lags
 * Date.now() by up to a millisecond; another host's clock may be seconds
 * off), and its mtime, when it was written, would rank it ahead of every job
 * enqueued while it waited. A retry of a job due within this margin waits at
 * most this long behind the backlog, as its delay would have.
 */
const EARLY_MARGIN_US = 5_000_000;

/** The ready keys of one group in one bucket, in byte order (= enqueue time); items[head] is the next. */
interface Fifo {
  items: string[];
  head: number;
  /** Whether its bucket's rotation holds an entry for it (a parked group's stays until it reaches the front). */
  queued: boolean;
  /** Skipped by take() until unparked (ReadyIndex.park). */
  parked: boolean;
}

/** The ready keys of one type and one coalesce tag (never ''), in byte order; items[head] is the next. */
interface KeyFifo {
  items: string[];
  head: number;
}

/** The ready jobs of one type and one priority. */
interface Bucket {
  /** The groups with keys in this bucket, by tag ('' for the jobs of no group). */
  fifos: Map<string, Fifo>;
  /** The groups taking turns: rotation[turn] is served next; slots before turn are spent. */
  rotation: (Fifo | undefined)[];
  turn: number;
}

interface TypeIndex {
  buckets: (Bucket | undefined)[];
  /** Priorities whose bucket has keys, ascending. */
  priorities: number[];
}

export class ReadyIndex {
  /**
   * Each id held, and the rescan round that last found it in queue/ (listed
   * it, or saw it added while the round ran): a quiet rescan drops the ids
   * its round did not find (discovery.ts). A number beside each id costs 8
   * bytes; a second set of the listed names cost a rescan of a million
   * about twice the time.
   */
  #known = new Map<string, number>();
  #round = 0;
  #types = new Map<string, TypeIndex>();
  #early = new Map<string, string>();
  /** `${encoded type}/${coalesce tag}` -> its ready keys, for tagged ids only (a type never holds '/': it is encoded). */
  #coalesced = new Map<string, KeyFifo>();
  /** Encoded type -> the tags of its parked groups; kept across reset() and while the type has no ready job. */
  #parked = new Map<string, Set<string>>();
  #agingStepUs: number;
  #clock: () => number;
  #readyUs: ((id: string) => number | undefined) | undefined;

  /**
   * `agingStepMs`: Infinity for strict priority. `clock`: microseconds since the epoch, the clock of the ids' times.
   * `readyUs`: when a job whose id's time is still to come became ready (undefined: unknown, rank it by its id);
   * without it every job ranks by its id.
   */
  constructor(agingStepMs: number, clock: () => number = nowUs, readyUs?: (id: string) => number | undefined) {
    this.#agingStepUs = agingStepMs * 1000;
    this.#clock = clock;
    this.#readyUs = readyUs;
  }

  get size(): number {
    return this.#known.size;
  }

  /** Begin a rescan round: ids added from now on (held already or not), and ids found(), count as found by it. */
  beginRound(): number {
    return ++this.#round;
  }

  /** A rescan's listing shows `id`: true if it is held (and now found by this round), false if it is not held. */
  found(id: string): boolean {
    if (!this.#known.has(id)) return false;
    this.#known.set(id, this.#round);
    return true;
  }

  /** Each id held, with the round that last found it, live (delete as you go). */
  rounds(): IterableIterator<[string, number]> {
    return this.#known.entries();
  }

  /**
   * Forget an id (it left queue/). Its bucket entry stays and is skipped
   * when it reaches the head, so this costs O(1).
   */
  delete(id: string): void {
    this.#known.delete(id);
    if (idCoalesceTag(id) !== '') this.#pruneCoalesced(id);
  }

  /**
   * Add a valid job id (callers check with names.isId): it is in queue/ now. Returns false if it was known (found again, as found() does).
   * An id put back after a claim took it (the claim could not run it) goes back to the head of its group's FIFO.
   */
  add(id: string): boolean {
    if (this.found(id)) return false;
    this.#known.set(id, this.#round);
    const key = this.#keyOf(id);
    if (idCoalesceTag(key) !== '') this.#addCoalesced(key);
    const fifo = this.#fifoFor(key);
    if (fifo === undefined) return true; // a new group's FIFO, made holding it
    insertInOrder(fifo, key);
    return true;
  }

  /** Replace the contents with `ids` (a rescan of queue/). Parked groups stay parked. */
  reset(ids: Iterable<string>): void {
    this.#known = new Map();
    for (const id of ids) this.#known.set(id, this.#round);
    this.#types.clear();
    this.#early.clear();
    this.#coalesced.clear();
    for (const id of this.#known.keys()) {
      const key = this.#keyOf(id);
      this.#fifoFor(key)?.items.push(key);
      const tag = idCoalesceTag(key);
      if (tag === '') continue;
      const coalesced = `${idEncodedType(key)}/${tag}`;
      const fifo = this.#coalesced.get(coalesced);
      if (fifo === undefined) this.#coalesced.set(coalesced, { items: [key], head: 0 });
      else fifo.items.push(key);
    }
    for (const fifo of this.#coalesced.values()) fifo.items.sort(byteOrder);
    for (const index of this.#types.values()) {
      for (const p of index.priorities) {
        const bucket = index.buckets[p]!;
        for (const fifo of bucket.fifos.values()) fifo.items.sort(byteOrder);
        // the groups take turns from the one whose head is the oldest
        if (bucket.rotation.length > 1) bucket.rotation.sort((a, b) => byteOrder(a!.items[0]!, b!.items[0]!));
      }
    }
  }

  /**
   * Remove and return the id that runs next among `types` (encoded; all when
   * undefined) but those in `skip` (encoded: the paused types), or undefined
   * when none is ready. `keyless`: only a job of no coalesce key; undefined
   * (nothing taken) when the one that runs next has a key (claimMany's batch of
   * jobs of no key ends there).
   */
  take(types: ReadonlySet<string> | undefined, skip?: ReadonlySet<string>, keyless = false): string | undefined {
    let best: string | undefined;
    let bestIndex: TypeIndex | undefined;
    let bestType = '';
    let bestRank = Infinity;
    let bestEnqueued = Infinity;
    const ageing = Number.isFinite(this.#agingStepUs);
    const now = ageing ? this.#clock() : 0;
    const consider = (type: string, index: TypeIndex): void => {
      // #head drops emptied buckets from index.priorities as it goes: walk a copy, unless there is one
      for (const p of index.priorities.length === 1 ? index.priorities : [...index.priorities]) {
        const id = this.#head(type, index, p);
        if (id === undefined) continue;
        const enqueued = idEnqueuedUs(id);
        const rank = ageing ? Math.max(now, enqueued + p * this.#agingStepUs) : 0;
        const wins =
          best === undefined ||
          rank < bestRank ||
          (rank === bestRank && (ageing && enqueued !== bestEnqueued ? enqueued < bestEnqueued : id < best));
        if (wins) {
          best = id;
          bestRank = rank;
          bestEnqueued = enqueued;
          bestIndex = index;
          bestType = type;
        }
        if (!ageing) break; // strict priority: the lowest priority's head wins in this type
      }
    };
    if (types === undefined) {
      for (const [type, index] of this.#types) if (skip?.has(type) !== true) consider(type, index);
    } else {
      for (const t of types) {
        const index = this.#types.get(t);
        if (index !== undefined && skip?.has(t) !== true) consider(t, index);
      }
    }
    if (best === undefined || bestIndex === undefined) return undefined;
    const keyed = idCoalesceTag(best) !== '';
    if (keyless && keyed) return undefined;
    const id = this.#early.get(best) ?? best;
    this.#known.delete(id);
    this.#served(bestType, bestIndex, idPriority(best));
    if (keyed) this.#pruneCoalesced(best);
    return id;
  }

  /**
   * Remove and return the next ready id of `encodedType` whose coalesce tag is `tag` (names.coalesceTag; the
   * jobs of no key are take()'s, with `keyless`), in byte order (priority, then time), or undefined when there is none, when the
   * type is in `skip`, or when the next one's group is parked (the batch ends there). O(1) amortised.
   */
  takeCoalesced(encodedType: string, tag: string, skip?: ReadonlySet<string>): string | undefined {
    if (skip?.has(encodedType) === true) return undefined;
    const name = `${encodedType}/${tag}`;
    const fifo = this.#coalesced.get(name);
    if (fifo === undefined) return undefined;
    this.#dropStale(name, fifo);
    const key = fifo.items[fifo.head];
    if (key === undefined) return undefined;
    const id = this.#early.get(key) ?? key;
    if (this.#parked.get(encodedType)?.has(idGroupTag(key)) === true) return undefined;
    this.#known.delete(id); // its bucket entry is skipped when it reaches the head, as delete's
    this.#dropStale(name, fifo);
    return id;
  }

  /**
   * Skip the jobs of group `tag` (names.groupTag; '' for the jobs of no group) of `encodedType` in take()
   * until unpark: its FIFOs leave the rotation, and its jobs stay known (size counts them).
   */
  park(encodedType: string, tag: string): void {
    let tags = this.#parked.get(encodedType);
    if (tags === undefined) {
      tags = new Set();
      this.#parked.set(encodedType, tags);
    }
    if (tags.has(tag)) return;
    tags.add(tag);
    const index = this.#types.get(encodedType);
    if (index === undefined) return;
    for (const p of index.priorities) {
      const fifo = index.buckets[p]!.fifos.get(tag);
      if (fifo !== undefined) fifo.parked = true; // its rotation entry is dropped when it reaches the front
    }
  }

  /** Take turns again for group `tag` of `encodedType` (every parked group of the type when undefined), from the back. */
  unpark(encodedType: string, tag?: string): void {
    const tags = this.#parked.get(encodedType);
    if (tags === undefined) return;
    const unparked = tag === undefined ? [...tags] : tags.has(tag) ? [tag] : [];
    for (const t of unparked) tags.delete(t);
    if (tags.size === 0) this.#parked.delete(encodedType);
    const index = this.#types.get(encodedType);
    if (index === undefined) return;
    for (const t of unparked) {
      for (const p of index.priorities) {
        const bucket = index.buckets[p]!;
        const fifo = bucket.fifos.get(t);
        if (fifo === undefined) continue;
        fifo.parked = false;
        if (!fifo.queued) {
          bucket.rotation.push(fifo);
          fifo.queued = true;
        }
      }
    }
  }

  /** Put `key` in its (type, coalesce tag) FIFO, in byte order. */
  #addCoalesced(key: string): void {
    const name = coalescedName(key);
    const fifo = this.#coalesced.get(name);
    if (fifo === undefined) {
      this.#coalesced.set(name, { items: [key], head: 0 });
      return;
    }
    insertInOrder(fifo, key);
  }

  /** Drop the taken front of the (type, coalesce tag) FIFO of `key` (an id or a rank key with a coalesce tag). */
  #pruneCoalesced(key: string): void {
    const name = coalescedName(key);
    const fifo = this.#coalesced.get(name);
    if (fifo !== undefined) this.#dropStale(name, fifo);
  }

  /** Advance `fifo` past keys no longer known; an emptied FIFO leaves the map. */
  #dropStale(name: string, fifo: KeyFifo): void {
    while (fifo.head < fifo.items.length) {
      const key = fifo.items[fifo.head]!;
      if (this.#known.has(this.#early.get(key) ?? key)) break;
      fifo.items[fifo.head++] = '';
    }
    if (fifo.head === fifo.items.length) {
      this.#coalesced.delete(name);
    } else if (fifo.head > 1024 && fifo.head * 2 > fifo.items.length) {
      fifo.items = fifo.items.slice(fifo.head);
      fifo.head = 0;
    }
  }

  /** The rank key of a new id: itself, unless it was made ready before its time. */
  #keyOf(id: string): string {
    const at = idEnqueuedUs(id);
    if (this.#readyUs === undefined || at <= this.#clock() + EARLY_MARGIN_US) return id;
    const ready = this.#readyUs(id);
    if (ready === undefined || ready >= at) return id;
    const key = withEnqueuedUs(id, ready);
    this.#early.set(key, id);
    return key;
  }

  /**
   * The first known key of the front group of a bucket, dropping forgotten keys, emptied groups and parked
   * groups' entries on the way; undefined when no group may be served (the bucket emptied, or every group is parked).
   */
  #head(type: string, index: TypeIndex, p: number): string | undefined {
    const bucket = index.buckets[p]!;
    for (;;) {
      const fifo = bucket.rotation[bucket.turn];
      if (fifo === undefined) return undefined; // no group takes turns: all of them are parked
      if (fifo.parked) {
        fifo.queued = false;
        this.#nextTurn(bucket);
        continue;
      }
      const key = fifo.items[fifo.head]!;
      if (this.#known.has(this.#early.get(key) ?? key)) return key;
      if (!this.#dropHead(type, index, p, bucket, fifo)) return undefined;
    }
  }

  /** The front group's head was taken: drop it, and move the group to the back of the rotation if it has more. */
  #served(type: string, index: TypeIndex, p: number): void {
    const bucket = index.buckets[p]!;
    const fifo = bucket.rotation[bucket.turn]!;
    if (!this.#dropHead(type, index, p, bucket, fifo)) return;
    if (bucket.rotation[bucket.turn] === fifo && bucket.rotation.length - bucket.turn > 1) {
      this.#nextTurn(bucket);
      bucket.rotation.push(fifo);
    }
  }

  /**
   * Remove the head key of `fifo`, the front group; a group left empty leaves the bucket and the rotation.
   * Returns false when the bucket emptied (it no longer counts among the type's priorities).
   */
  #dropHead(type: string, index: TypeIndex, p: number, bucket: Bucket, fifo: Fifo): boolean {
    const key = fifo.items[fifo.head]!;
    this.#early.delete(key);
    fifo.items[fifo.head++] = '';
    if (fifo.head < fifo.items.length) {
      if (fifo.head > 1024 && fifo.head * 2 > fifo.items.length) {
        fifo.items = fifo.items.slice(fifo.head);
        fifo.head = 0;
      }
      return true;
    }
    bucket.fifos.delete(idGroupTag(key)); // its tag, not kept in the FIFO: 8 bytes a group
    fifo.queued = false;
    this.#nextTurn(bucket);
    if (bucket.fifos.size > 0) return true;
    index.buckets[p] = undefined;
    index.priorities.splice(index.priorities.indexOf(p), 1);
    if (index.priorities.length === 0) this.#types.delete(type);
    return false;
  }

  /** Spend the front slot of the rotation. */
  #nextTurn(bucket: Bucket): void {
    const { rotation } = bucket;
    rotation[bucket.turn++] = undefined;
    if (bucket.turn === rotation.length) {
      bucket.rotation = [];
      bucket.turn = 0;
    } else if (bucket.turn > 1024 && bucket.turn * 2 > rotation.length) {
      bucket.rotation = rotation.slice(bucket.turn);
      bucket.turn = 0;
    }
  }

  /**
   * The FIFO of the group of `key`; undefined when the group had none and one was made holding just `key` (at
   * the back of the rotation, unless the group is parked). Made with room for one key, not the 17 a push onto an
   * empty array reserves: with 10,000 groups of one job each that is 130 of the bytes per waiting job.
   */
  #fifoFor(key: string): Fifo | undefined {
    const type = idEncodedType(key);
    let index = this.#types.get(type);
    if (index === undefined) {
      index = { buckets: [], priorities: [] };
      this.#types.set(type, index);
    }
    const p = idPriority(key);
    let bucket = index.buckets[p];
    if (bucket === undefined) {
      bucket = { fifos: new Map(), rotation: [], turn: 0 };
      index.buckets[p] = bucket;
      index.priorities.push(p);
      if (index.priorities.length > 1) index.priorities.sort((a, b) => a - b);
    }
    const tag = idGroupTag(key);
    const fifo = bucket.fifos.get(tag);
    if (fifo !== undefined) return fifo;
    const parked = this.#parked.get(type)?.has(tag) === true;
    const made: Fifo = { items: [key], head: 0, queued: !parked, parked };
    bucket.fifos.set(tag, made);
    if (!parked) bucket.rotation.push(made);
    return undefined;
  }
}

/** The name of the (type, coalesce tag) FIFO of an id or rank key with a coalesce tag. */
function coalescedName(key: string): string {
  return `${idEncodedType(key)}/${idCoalesceTag(key)}`;
}

/** Put `key` among the keys of `fifo` from its head on, in byte order: at the back (the usual case) or by binary search. */
function insertInOrder(fifo: { items: string[]; head: number }, key: string): void {
  const { items } = fifo;
  if (items.length === fifo.head || items[items.length - 1]! < key) {
    items.push(key);
    return;
  }
  let lo = fifo.head;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (items[mid]! < key) lo = mid + 1;
    else hi = mid;
  }
  items.splice(lo, 0, key);
}

function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
