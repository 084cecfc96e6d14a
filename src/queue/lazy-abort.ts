/**
 * An AbortController made only when someone asks for its signal. Every
 * claimed job has a cancel signal and every pool run a processor signal, but
 * almost none is ever aborted or even looked at; making the controller and its
 * signal up front, and listening on it, was a tenth of the pool's time per job
 * (bench/core.js and a --cpu-prof of a concurrency-50 drain, 2026-12-03).
 */
export class LazyAbort {
  #controller: AbortController | undefined;
  #aborted = false;
  #reason: unknown;
  #listeners: (() => void)[] | undefined;

  get aborted(): boolean {
    return this.#aborted;
  }

  /** The reason abort() was given (the signal's reason once it is made). */
  get reason(): unknown {
    return this.#controller === undefined ? this.#reason : (this.#controller.signal.reason as unknown);
  }

  /** The signal, made at the first ask (already aborted if abort came first). */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  /** Abort once: the signal (if made) fires first, then each onAbort listener, in order. */
  abort(reason?: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#controller?.abort(reason);
    for (const listener of this.#listeners?.splice(0) ?? []) listener();
  }

  /** Call `listener` once at the abort (now, if it has happened), without making the signal. */
  onAbort(listener: () => void): void {
    if (this.#aborted) listener();
    else (this.#listeners ??= []).push(listener);
  }
}
