/**
 * The file-name codec: the only module that builds or parses names in the
 * queue directory (FORMAT.md, "File names"). Everything else asks it.
 *
 *   job id        PP-TTTTTTTTTTTTTTTT-UNIQUE.TYPE     queue/, done/, failed/
 *   delayed name  DDDDDDDDDDDDDDDD~ID                 delayed/ (D: due time)
 *   active name   ID@CLAIM                            active/
 *   claim token   HOST.PID.NONCE.SEQ
 *
 * PP is the priority 00..99, T and D are microseconds since the Unix epoch in
 * 16 digits, UNIQUE is 1..32 of [A-Za-z0-9]. So the byte order of ids is
 * priority, then enqueue time, then the tiebreak (invariant I5), and `ls`
 * with LC_ALL=C lists queue/ in run order.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { DirQueueError } from './errors.js';

export const PRIORITY_MIN = 0;
export const PRIORITY_MAX = 99;
export const PRIORITY_DEFAULT = 50;
/** Longest encoded type: keeps active names well under NAME_MAX (255). */
export const TYPE_MAX_ENCODED = 120;

const TYPE_ENCODED = '(?:[A-Za-z0-9_.-]|%[0-9A-F]{2})+';
const ID = `(\\d{2})-(\\d{16})-([A-Za-z0-9]{1,32})\\.(${TYPE_ENCODED})`;
const ID_RE = new RegExp(`^${ID}$`);
const DELAYED_RE = new RegExp(`^(\\d{16})~(${ID})$`);
/** HOST.PID.NONCE: a Queue handle (NameMaker.owner); a claim adds .SEQ, a tmp/ name ends .tmp. */
const OWNER = '([A-Za-z0-9-]{1,32})\\.(\\d{1,10})\\.([a-z0-9]{1,16})';
const CLAIM = `${OWNER}\\.([a-z0-9]{1,13})`;
const CLAIM_RE = new RegExp(`^${CLAIM}$`);
const ACTIVE_RE = new RegExp(`^(${ID})@(${CLAIM})$`);
const TMP_RE = new RegExp(`^(${ID})\\.${OWNER}\\.tmp$`);
const OWNER_RE = new RegExp(`^${OWNER}$`);
/** workers/totals.OWNER.SEQ: one process's counter delta (totals.ts). */
const DELTA_RE = new RegExp(`^totals\\.${OWNER}\\.([a-z0-9]{1,13})$`);
/**
 * The dot files the library makes in tmp/ besides job temps, each renamed or
 * linked into place or deleted by its writer: a counter delta or base
 * (totals.ts: .totals.OWNER.SEQ, .totals~CLAIM, .totals~totals~CLAIM), a
 * maintenance lock (sweep-lock.ts: .lock.OWNER.TOKEN), a scratch clock
 * (liveness.ts: .clock.PID.TOKEN) and dirqueue.json's replacement
 * (safe-file.ts replaceFile: .dirqueue.json.PID.TOKEN).
 */
const LIBRARY_DOT_RE = new RegExp(
  `^\\.(?:totals\\.${OWNER}\\.[a-z0-9]{1,13}|totals~(?:totals~)?${CLAIM}|lock\\.${OWNER}\\.[a-z0-9]{8}|(?:clock|dirqueue\\.json)\\.\\d{1,10}\\.[a-z0-9]{8})$`,
);
const SAFE_TYPE_CHAR = /[A-Za-z0-9_.-]/;

export interface ParsedId {
  id: string;
  priority: number;
  /** Enqueue time in microseconds since the epoch. */
  enqueuedUs: number;
  unique: string;
  type: string;
  encodedType: string;
}

export interface ParsedClaim {
  claim: string;
  host: string;
  pid: number;
  nonce: string;
  seq: string;
}

/**
 * Percent-encode a job type so it can be part of a file name: bytes other than
 * [A-Za-z0-9_.-] become %XX (UTF-8, upper-case hex). A type never becomes a
 * path: '/' is always encoded.
 */
export function encodeType(type: unknown): string {
  return encodePart(type, 'job type', 'EBADTYPE');
}

/** A unique key as a file name in keys/, encoded like a type. */
export function encodeKey(key: unknown): string {
  const encoded = encodePart(key, 'key', 'EBADOPTION');
  return encoded.startsWith('.') ? `%2E${encoded.slice(1)}` : encoded; // never a dot file, never "." or ".."
}

function encodePart(value: unknown, what: string, code: 'EBADTYPE' | 'EBADOPTION'): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new DirQueueError(code, `${what} must be a non-empty string, got ${describe(value)}`);
  }
  let out = '';
  for (const char of value) {
    if (SAFE_TYPE_CHAR.test(char)) out += char;
    else for (const byte of Buffer.from(char, 'utf8')) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  if (out.length > TYPE_MAX_ENCODED) {
    throw new DirQueueError(code, `${what} is too long: ${out.length} characters once encoded for a file name, at most ${TYPE_MAX_ENCODED}`);
  }
  return out;
}

function decodeType(encoded: string): string | undefined {
  try {
    const type = decodeURIComponent(encoded);
    return encodeType(type) === encoded ? type : undefined; // only the canonical spelling is a job
  } catch {
    return undefined;
  }
}

export function parseId(name: string): ParsedId | undefined {
  const m = ID_RE.exec(name);
  if (!m) return undefined;
  const type = decodeType(m[4]!);
  if (type === undefined) return undefined;
  return { id: name, priority: Number(m[1]), enqueuedUs: Number(m[2]), unique: m[3]!, type, encodedType: m[4]! };
}

export function isId(name: string): boolean {
  return parseId(name) !== undefined;
}

/** Throws EBADID unless `id` is a job id. */
export function checkId(id: unknown): string {
  if (typeof id !== 'string' || !isId(id)) {
    throw new DirQueueError('EBADID', `not a job id: ${describe(id)} (ids look like 50-1763830000000000-k3j9x0.email)`);
  }
  return id;
}

/** Fields of an id read without a regex, for the claim index's hot path. */
export const idPriority = (id: string): number => (id.charCodeAt(0) - 48) * 10 + (id.charCodeAt(1) - 48);
export const idEnqueuedUs = (id: string): number => Number(id.slice(3, 19));
export const idEncodedType = (id: string): string => id.slice(id.indexOf('.', 20) + 1);
/** `id` with its time replaced by `us`: the rank of a job made ready at another time than its id says (ready-index.ts). */
export const withEnqueuedUs = (id: string, us: number): string => `${id.slice(0, 3)}${pad16(us)}${id.slice(19)}`;

export function delayedName(dueUs: number, id: string): string {
  return `${pad16(dueUs)}~${id}`;
}

export function parseDelayedName(name: string): { dueUs: number; id: string } | undefined {
  const m = DELAYED_RE.exec(name);
  if (!m || !isId(m[2]!)) return undefined;
  return { dueUs: Number(m[1]), id: m[2]! };
}

export function activeName(id: string, claim: string): string {
  return `${id}@${claim}`;
}

export function parseActiveName(name: string): { id: string; claim: ParsedClaim } | undefined {
  const m = ACTIVE_RE.exec(name);
  if (!m) return undefined;
  const claim = parseClaim(name.slice(name.lastIndexOf('@') + 1));
  if (!claim || !isId(m[1]!)) return undefined;
  return { id: m[1]!, claim };
}

export function parseClaim(claim: string): ParsedClaim | undefined {
  const m = CLAIM_RE.exec(claim);
  if (!m) return undefined;
  return { claim, host: m[1]!, pid: Number(m[2]), nonce: m[3]!, seq: m[4]! };
}

/** The job and writer of a file in tmp/ (ID.HOST.PID.NONCE.tmp, NameMaker.tmpName), if it is one of ours. */
export function parseTmpName(name: string): { id: string; owner: string } | undefined {
  const m = TMP_RE.exec(name);
  if (!m) return undefined;
  const [, id, , , , , host, pid, nonce] = m as unknown as [string, string, string, string, string, string, string, string, string];
  return { id, owner: `${host}.${pid}.${nonce}` };
}

/** Whether `name` is a Queue handle's owner token (HOST.PID.NONCE): the name of its heartbeat in workers/. */
/**
 * Whether `name` is one the library makes in tmp/, the only names sweeps
 * delete there: a file another user put in tmp/ is not the library's to
 * delete (dirq fsck names it).
 */
export function isLibraryTmpName(name: string): boolean {
  return TMP_RE.test(name) || LIBRARY_DOT_RE.test(name);
}

export function isOwnerName(name: string): boolean {
  return OWNER_RE.test(name);
}

/** The name of the `seq`th counter delta written by `owner` (NameMaker.owner). */
export function deltaName(owner: string, seq: number): string {
  return `totals.${owner}.${seq.toString(36)}`;
}

/** Whether `name` is a counter delta's name; only such names, read from a file, may become a path. */
export function isDeltaName(name: string): boolean {
  return DELTA_RE.test(name);
}

function pad16(us: number): string {
  if (!Number.isSafeInteger(us) || us < 0 || us > 9_999_999_999_999_999) {
    throw new DirQueueError('EBADOPTION', `time out of range: ${us} microseconds since the epoch`);
  }
  return String(us).padStart(16, '0');
}

/** This host's name as it appears in claim tokens: [A-Za-z0-9-], at most 32 characters. */
export function hostToken(name = hostname()): string {
  const token = name.split('.')[0]!.replace(/[^A-Za-z0-9-]/g, '-').slice(0, 32);
  return token.length > 0 ? token : 'host';
}

export function randomToken(length: number): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let out = '';
  for (const byte of randomBytes(length)) out += alphabet[byte % 36];
  return out;
}

/** How far the wall clock is from the monotonic one, in ms (see nowUs). */
let wallOffsetMs = 0;

/**
 * Microseconds since the epoch on the wall clock. Date.now() alone has only
 * milliseconds, and performance.now() alone keeps the offset it had at start,
 * so after a step of the wall clock (suspend, NTP) its times would no longer
 * compare with the due times and ids that Date.now() makes here and on other
 * hosts. So: the monotonic clock for the microseconds, re-anchored to
 * Date.now() whenever the two are more than a millisecond apart.
 */
export function nowUs(): number {
  const mono = performance.timeOrigin + performance.now();
  const wall = Date.now();
  if (Math.abs(mono + wallOffsetMs - wall) > 1) wallOffsetMs = wall - mono;
  return Math.floor((mono + wallOffsetMs) * 1000);
}

/**
 * Makes job ids and claim tokens for one Queue instance. Ids of jobs ready
 * now have strictly increasing times, so jobs enqueued by one process keep
 * their order (FIFO within a priority) even within one microsecond or if the
 * clock steps back. A job with a due time gets exactly that time, which moves
 * nothing else: a later job ready now still gets the time it was enqueued.
 */
export class NameMaker {
  readonly owner: string;
  #nonce = randomToken(6);
  #clock: () => number;
  #lastUs = 0;
  #seq = 0;
  #dueSeq = 0;

  /** `clock`: microseconds since the epoch (nowUs). */
  constructor(host = hostToken(), pid = process.pid, clock: () => number = nowUs) {
    this.owner = `${host}.${pid}.${this.#nonce}`;
    this.#clock = clock;
  }

  /**
   * A fresh job id: ready now, or at `dueUs` (a delayed job). An id with a due
   * time may share its time with any other id of this maker, so its unique
   * part is the nonce plus a counter, longer than the plain nonce of the ids
   * made for now: the two kinds never collide, and ids due at the same
   * microsecond keep the order they were made in.
   */
  id(priority: number, encodedType: string, dueUs?: number): string {
    let unique = this.#nonce;
    let us: number;
    if (dueUs === undefined) {
      us = Math.max(this.#clock(), this.#lastUs + 1);
      this.#lastUs = us;
    } else {
      us = dueUs;
      unique += (this.#dueSeq++).toString(36).padStart(6, '0');
    }
    return `${String(priority).padStart(2, '0')}-${pad16(us)}-${unique}.${encodedType}`;
  }

  /** A claim token unique to this instance and claim: HOST.PID.NONCE.SEQ. */
  claim(): string {
    return `${this.owner}.${(this.#seq++).toString(36)}`;
  }

  /** Name of a file under tmp/ that no other writer uses. */
  tmpName(id: string): string {
    return `${id}.${this.owner}.tmp`;
  }
}

export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol') return 'a symbol';
  if (value === null || typeof value !== 'object') return String(value);
  return Array.isArray(value) ? 'an array' : 'an object';
}
