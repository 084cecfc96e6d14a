/**
 * q.limit and q.limits: set, clear and describe the limits of types
 * (store/limits.ts holds the files, limit-gate.ts applies them to claims).
 */
import { DirQueueError } from '../store/errors.js';
import type { Layout } from '../store/layout.js';
import { checkLimitSpec, type LimitSpec, type RateLimit } from '../store/limit-spec.js';
import { listTypeDir, readLimits, removeLimit, typeLimitDir, writeLimit } from '../store/limits.js';
import { describe, encodeType } from '../store/names.js';

/** One type's limit, and how much of it is in use. */
export interface LimitInfo {
  type: string;
  concurrency?: number;
  rate?: RateLimit;
  groupConcurrency?: number;
  /** Jobs of the type running now on every host (the slots held), when concurrency or groupConcurrency is set. */
  running?: number;
  /** Groups with a job running now, when groupConcurrency is set. */
  groupsRunning?: number;
  /** Starts in the last `rate.per` ms, when a rate is set. */
  recentStarts?: number;
  /** When it was set, and by which Queue handle (HOST.PID.NONCE). */
  at: string | undefined;
  by: string | undefined;
  /** Its file, relative to the queue directory. */
  file: string;
}

/** A file in limits/ that is no limit: what `limits()` reports instead (never obeyed). */
export interface LimitProblemInfo {
  file: string;
  invalid: string;
}

/** Set (spec) or clear (null) the limit of `type`. */
export async function setLimit(layout: Layout, owner: string, type: string, spec: LimitSpec | null): Promise<boolean> {
  encodeType(type); // EBADTYPE first: a bad type is the more useful complaint
  if (spec === null) return removeLimit(layout, type);
  if (spec === undefined) {
    throw new DirQueueError(
      'EBADOPTION',
      `limit(${describe(type)}) needs a limit { concurrency, rate, groupConcurrency }, or null to clear it`,
    );
  }
  await writeLimit(layout, type, checkLimitSpec(spec), owner);
  return true;
}

/** Every limit, by type, with its use (one listing of each limited type's directory); broken files as problems. */
export function limitInfos(layout: Layout, fsNowMs: number): (LimitInfo | LimitProblemInfo)[] {
  const { limits, problems } = readLimits(layout);
  const out: (LimitInfo | LimitProblemInfo)[] = [];
  for (const { type, dir, limit } of limits) {
    const listing = listTypeDir(dir);
    const info: LimitInfo = {
      type,
      ...(limit.concurrency === undefined ? {} : { concurrency: limit.concurrency }),
      ...(limit.rate === undefined ? {} : { rate: limit.rate }),
      ...(limit.groupConcurrency === undefined ? {} : { groupConcurrency: limit.groupConcurrency }),
      at: limit.at,
      by: limit.by,
      file: `${relative(layout, typeLimitDir(layout, type))}/limit.json`,
    };
    const typeSlots = listing.slots.filter((s) => s.tag === undefined).length;
    if (limit.concurrency !== undefined) info.running = typeSlots;
    else if (limit.groupConcurrency !== undefined) info.running = listing.slots.length;
    if (limit.groupConcurrency !== undefined) {
      info.groupsRunning = new Set(listing.slots.filter((s) => s.tag !== undefined).map((s) => s.tag)).size;
    }
    if (limit.rate !== undefined) {
      const since = (fsNowMs - limit.rate.per) * 1000;
      info.recentStarts = listing.tokens.filter((t) => t.k < limit.rate!.max && t.usedUs > since).length;
    }
    out.push(info);
  }
  for (const problem of problems) out.push({ file: `limits/${problem.name}`, invalid: problem.reason });
  return out;
}

function relative(layout: Layout, path: string): string {
  return path.slice(layout.root.length + 1);
}
