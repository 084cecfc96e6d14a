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
 */
import { idEncodedType, idEnqueuedUs, idPriority, nowUs, withEnqueuedUs } from '../store/names.js';

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

interface Bucket {
  items: string[];
  head: number;
}

interface TypeIndex {
  buckets: (Bucket | undefined)[];
  /** Non-empty priorities, ascending. */
  priorities: number[];
}

export class ReadyIndex {
  #known = new Set<string>();
  #types = new Map<string, TypeIndex>();
  #early = new Map<string, string>();
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

  /**
   * Forget an id (it left queue/). Its bucket entry stays and is skipped
   * when it reaches the head, so this costs O(1).
   */
  delete(id: string): void {
    this.#known.delete(id);
  }

  /** Add a valid job id (callers check with names.isId). Returns false if it was known. */
  add(id: string): boolean {
    if (this.#known.has(id)) return false;
    this.#known.add(id);
    const key = this.#keyOf(id);
    const bucket = this.#bucketFor(key);
    const { items } = bucket;
    if (items.length === bucket.head || items[items.length - 1]! < key) {
      items.push(key);
    } else {
      let lo = bucket.head;
      let hi = items.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (items[mid]! < key) lo = mid + 1;
        else hi = mid;
      }
      items.splice(lo, 0, key);
    }
    return true;
  }

  /** Replace the contents with `ids` (a rescan of queue/). */
  reset(ids: Iterable<string>): void {
    this.#known = new Set(ids);
    this.#types.clear();
    this.#early.clear();
    for (const id of this.#known) this.#bucketFor(id).items.push(this.#keyOf(id));
    for (const index of this.#types.values()) for (const p of index.priorities) index.buckets[p]!.items.sort(byteOrder);
  }

  /**
   * Remove and return the id that runs next among `types` (encoded; all when
   * undefined) but those in `skip` (encoded: the paused types), or undefined
   * when none is ready.
   */
  take(types: ReadonlySet<string> | undefined, skip?: ReadonlySet<string>): string | undefined {
    let best: string | undefined;
    let bestIndex: TypeIndex | undefined;
    let bestType = '';
    let bestRank = Infinity;
    let bestEnqueued = Infinity;
    const ageing = Number.isFinite(this.#agingStepUs);
    const now = ageing ? this.#clock() : 0;
    const consider = (type: string, index: TypeIndex): void => {
      for (const p of [...index.priorities]) {
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
    const id = this.#early.get(best) ?? best;
    this.#known.delete(id);
    this.#removeHead(bestType, bestIndex, idPriority(best));
    return id;
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

  /** The first known key of a bucket, dropping forgotten ones on the way; undefined when it empties. */
  #head(type: string, index: TypeIndex, p: number): string | undefined {
    const bucket = index.buckets[p]!;
    for (;;) {
      const key = bucket.items[bucket.head]!;
      if (this.#known.has(this.#early.get(key) ?? key)) return key;
      this.#removeHead(type, index, p);
      if (index.buckets[p]!.items.length === 0) return undefined;
    }
  }

  #bucketFor(id: string): Bucket {
    const type = idEncodedType(id);
    let index = this.#types.get(type);
    if (index === undefined) {
      index = { buckets: [], priorities: [] };
      this.#types.set(type, index);
    }
    const p = idPriority(id);
    let bucket = index.buckets[p];
    if (bucket === undefined || bucket.items.length === bucket.head) {
      if (bucket === undefined) {
        bucket = { items: [], head: 0 };
        index.buckets[p] = bucket;
      }
      if (!index.priorities.includes(p)) {
        index.priorities.push(p);
        index.priorities.sort((a, b) => a - b);
      }
    }
    return bucket;
  }

  #removeHead(type: string, index: TypeIndex, p: number): void {
    const bucket = index.buckets[p]!;
    this.#early.delete(bucket.items[bucket.head]!);
    bucket.items[bucket.head++] = '';
    if (bucket.head === bucket.items.length) {
      bucket.items = [];
      bucket.head = 0;
      index.priorities.splice(index.priorities.indexOf(p), 1);
      if (index.priorities.length === 0) this.#types.delete(type);
    } else if (bucket.head > 1024 && bucket.head * 2 > bucket.items.length) {
      bucket.items = bucket.items.slice(bucket.head);
      bucket.head = 0;
    }
  }
}

function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
