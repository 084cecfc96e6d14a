/**
 * The in-memory index of ready job ids (the names in queue/), so that a claim
 * never scans the directory: ids are kept per type and per priority in
 * FIFO buckets, sorted by name (= enqueue time within a bucket). A claim looks
 * only at the head of each non-empty bucket of the wanted types, so its cost
 * does not grow with the backlog.
 *
 * Ordering (I5, I8): strict priority then FIFO when `agingStep` is Infinity.
 * Otherwise a job's rank is its enqueue time plus priority x agingStep: a job
 * of priority p waits at most p x agingStep behind more urgent jobs enqueued
 * after it, so nothing starves, while short backlogs still run in priority order.
 */
import { idEncodedType, idEnqueuedUs, idPriority } from './names.js';

interface Bucket {
  items: string[];
  head: number;
}

interface TypeIndex {
  buckets: (Bucket | undefined)[];
  /** Non-empty priorities, ascending. */
  priorities: number[];
  size: number;
}

export class ReadyIndex {
  #known = new Set<string>();
  #types = new Map<string, TypeIndex>();
  #agingStepUs: number;

  /** `agingStepMs`: Infinity for strict priority. */
  constructor(agingStepMs: number) {
    this.#agingStepUs = agingStepMs * 1000;
  }

  get size(): number {
    return this.#known.size;
  }

  has(id: string): boolean {
    return this.#known.has(id);
  }

  /**
   * Forget an id (it left queue/). Its bucket entry stays and is skipped
   * when it reaches the head, so this costs O(1).
   */
  delete(id: string): void {
    if (!this.#known.delete(id)) return;
    const index = this.#types.get(idEncodedType(id));
    if (index !== undefined) index.size--;
  }

  /** Add a valid job id (callers check with names.isId). Returns false if it was known. */
  add(id: string): boolean {
    if (this.#known.has(id)) return false;
    this.#known.add(id);
    const bucket = this.#bucketFor(id);
    const { items } = bucket;
    if (items.length === bucket.head || items[items.length - 1]! < id) {
      items.push(id);
    } else {
      let lo = bucket.head;
      let hi = items.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (items[mid]! < id) lo = mid + 1;
        else hi = mid;
      }
      items.splice(lo, 0, id);
    }
    return true;
  }

  /** Replace the contents with `ids` (a rescan of queue/). */
  reset(ids: Iterable<string>): void {
    this.#known = new Set(ids);
    this.#types.clear();
    for (const id of this.#known) this.#bucketFor(id).items.push(id);
    for (const index of this.#types.values()) for (const p of index.priorities) index.buckets[p]!.items.sort(byteOrder);
  }

  /** Count of ready ids of the given encoded types (all when undefined). */
  count(types?: ReadonlySet<string>): number {
    if (types === undefined) return this.#known.size;
    let n = 0;
    for (const t of types) n += this.#types.get(t)?.size ?? 0;
    return n;
  }

  /**
   * Remove and return the id that runs next among `types` (encoded; all when
   * undefined), or undefined when none is ready.
   */
  take(types: ReadonlySet<string> | undefined): string | undefined {
    let best: string | undefined;
    let bestIndex: TypeIndex | undefined;
    let bestType = '';
    let bestRank = Infinity;
    const consider = (type: string, index: TypeIndex): void => {
      for (const p of [...index.priorities]) {
        const id = this.#head(type, index, p);
        if (id === undefined) continue;
        const rank = Number.isFinite(this.#agingStepUs) ? idEnqueuedUs(id) + p * this.#agingStepUs : 0;
        if (best === undefined || rank < bestRank || (rank === bestRank && id < best)) {
          best = id;
          bestRank = rank;
          bestIndex = index;
          bestType = type;
        }
        if (!Number.isFinite(this.#agingStepUs)) break; // strict priority: the lowest priority's head wins in this type
      }
    };
    if (types === undefined) {
      for (const [type, index] of this.#types) consider(type, index);
    } else {
      for (const t of types) {
        const index = this.#types.get(t);
        if (index !== undefined) consider(t, index);
      }
    }
    if (best === undefined || bestIndex === undefined) return undefined;
    this.#known.delete(best);
    bestIndex.size--;
    this.#removeHead(bestType, bestIndex, idPriority(best));
    return best;
  }

  /** The first known id of a bucket, dropping forgotten ones on the way; undefined when it empties. */
  #head(type: string, index: TypeIndex, p: number): string | undefined {
    const bucket = index.buckets[p]!;
    for (;;) {
      const id = bucket.items[bucket.head]!;
      if (this.#known.has(id)) return id;
      this.#removeHead(type, index, p);
      if (index.buckets[p]!.items.length === 0) return undefined;
    }
  }

  #bucketFor(id: string): Bucket {
    const type = idEncodedType(id);
    let index = this.#types.get(type);
    if (index === undefined) {
      index = { buckets: [], priorities: [], size: 0 };
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
    index.size++;
    return bucket;
  }

  #removeHead(type: string, index: TypeIndex, p: number): void {
    const bucket = index.buckets[p]!;
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
