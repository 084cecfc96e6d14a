/**
 * The k smallest of a stream, in order, without holding the stream: a
 * max-heap of at most k items (O(n log k) time, O(k) memory), so that
 * `dirq ls --limit 20` over a million names keeps 20, not a million.
 */
export class Smallest<T> {
  readonly #k: number;
  readonly #compare: (a: T, b: T) => number;
  /** A max-heap: #heap[0] is the largest kept. */
  readonly #heap: T[] = [];

  constructor(k: number, compare: (a: T, b: T) => number) {
    this.#k = k;
    this.#compare = compare;
  }

  /** Whether `item` would be kept: the heap has room, or it is smaller than the largest kept. */
  wants(item: T): boolean {
    return this.#k > 0 && (this.#heap.length < this.#k || this.#compare(item, this.#heap[0]!) < 0);
  }

  /** Keep `item` if it is among the k smallest seen so far. */
  offer(item: T): void {
    if (!this.wants(item)) return;
    const heap = this.#heap;
    if (heap.length < this.#k) {
      heap.push(item);
      this.#up(heap.length - 1);
    } else {
      heap[0] = item;
      this.#down(0);
    }
  }

  /** Once k items are kept, the largest of them (only a smaller one is kept from now on); undefined before. */
  threshold(): T | undefined {
    return this.#heap.length >= this.#k ? this.#heap[0] : undefined;
  }

  /** The items kept, smallest first. */
  sorted(): T[] {
    return [...this.#heap].sort(this.#compare);
  }

  #up(i: number): void {
    const heap = this.#heap;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.#compare(heap[i]!, heap[parent]!) <= 0) return;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  #down(i: number): void {
    const heap = this.#heap;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let largest = i;
      if (left < heap.length && this.#compare(heap[left]!, heap[largest]!) > 0) largest = left;
      if (right < heap.length && this.#compare(heap[right]!, heap[largest]!) > 0) largest = right;
      if (largest === i) return;
      [heap[i], heap[largest]] = [heap[largest]!, heap[i]!];
      i = largest;
    }
  }
}

/** Byte order of ASCII names, as Array.prototype.sort and `ls` with LC_ALL=C order them. */
export const byteOrder = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
