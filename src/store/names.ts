/**
 * The file-name codec: the only module that builds or parses names in the
 * queue directory (FORMAT.md, "File names"). Everything else asks it.
 *
 *   job id        PP-TTTTTTTTTTTTTTTT-UNIQUE.TYPE     queue/, done/, failed/
 *                 (a grouped job's UNIQUE ends with its group tag: G and 10 of [a-z0-9]; then,
 *                 with a coalesce key, its coalesce tag: C and 8 of [a-z0-9])
 *   delayed name  DDDDDDDDDDDDDDDD~ID                 delayed/ (D: due time)
 *   active name   ID@CLAIM                            active/
 *   claim token   HOST.PID.NONCE.SEQ
 *   helper files  workers/.lock, workers/.clock, workers/totals*, keys/.stale.*, tmp/.*
 *   pauses        paused/TYPE (a type encoded as a key), paused/@all
 *   cancels       cancel/ID@CLAIM (the claim to cancel)
 *   schedules     schedules/NAME.json, schedules/.NAME@SLOT[@OWNER], schedules/.NAME.last
 *   limits        limits/TYPE/limit.json, limits/TYPE/K and g.TAG.K (running slots), r.K@T (rate tokens)
 *
 * PP is the priority 00..99, T and D are microseconds since the Unix epoch in
 * 16 digits, UNIQUE is 1..32 of [A-Za-z0-9]. So the byte order of ids is
 * priority, then enqueue time, then the tiebreak (invariant I5), and `ls`
 * with LC_ALL=C lists queue/ in run order.
 */
import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { DirQueueError } from './errors.js';

export const PRIORITY_MIN = 0;
export const PRIORITY_MAX = 99;
export const PRIORITY_DEFAULT = 50;
/** Longest encoded type: keeps active names well under NAME_MAX (255). */
export const TYPE_MAX_ENCODED = 120;

/** Longest UNIQUE part of a job id. */
const UNIQUE_MAX = 32;
const TYPE_ENCODED = '(?:[A-Za-z0-9_.-]|%[0-9A-F]{2})+';
const ID = `(?<priority>\\d{2})-(?<us>\\d{16})-(?<unique>[A-Za-z0-9]{1,${UNIQUE_MAX}})\\.(?<type>${TYPE_ENCODED})`;
const ID_RE = new RegExp(`^${ID}$`);
const DELAYED_RE = new RegExp(`^(?<due>\\d{16})~(?<id>${ID})$`);
/** HOST.PID.NONCE: a Queue handle (NameMaker.owner); a claim adds .SEQ, a tmp/ name ends .tmp. */
const OWNER = '(?<owner>(?<host>[A-Za-z0-9-]{1,32})\\.(?<pid>\\d{1,10})\\.(?<nonce>[a-z0-9]{1,16}))';
const CLAIM = `${OWNER}\\.(?<seq>[a-z0-9]{1,13})`;
const CLAIM_RE = new RegExp(`^${CLAIM}$`);
const ACTIVE_RE = new RegExp(`^(?<id>${ID})@(?<claim>${CLAIM})$`);
const TMP_RE = new RegExp(`^(?<id>${ID})\\.${OWNER}\\.tmp$`);
const OWNER_RE = new RegExp(`^${OWNER}$`);
/** workers/totals.OWNER.SEQ: one process's counter delta (totals.ts). */
const DELTA_RE = new RegExp(`^totals\\.${OWNER}\\.(?<seq>[a-z0-9]{1,13})$`);
/** A fragment without its group names, to use more than once in one expression. */
const unnamed = (fragment: string): string => fragment.replace(/\(\?<[a-z]+>/g, '(?:');
/**
 * The dot files the library makes in tmp/ besides job temps, each renamed or
 * linked into place or deleted by its writer: a counter delta or base
 * (totals.ts: .totals.OWNER.SEQ, .totals~CLAIM, .totals~totals~CLAIM), a
 * maintenance lock (sweep-lock.ts: .lock.OWNER.TOKEN), a scratch clock
 * (liveness.ts: .clock.PID.TOKEN), dirqueue.json's replacement
 * (safe-file.ts replaceFile: .dirqueue.json.PID.TOKEN), a pause file
 * being written or an ended one set aside (pauses.ts: .paused.OWNER.TOKEN),
 * a limit file being written (limits.ts: .limit.OWNER.TOKEN), a batch file
 * being written (batches.ts: .batch.OWNER.TOKEN),
 * a schedule file's replacement and a last-run link being made
 * (.schedule.PID.TOKEN, .lastrun.PID.TOKEN) and a scheduled job being made
 * (.slot.OWNER.ID, schedule-files.ts). Each is built below.
 */
const LIBRARY_DOT_RE = new RegExp(
  `^\\.(?:totals\\.${unnamed(OWNER)}\\.[a-z0-9]{1,13}|totals~(?:totals~)?${unnamed(CLAIM)}|lock\\.${unnamed(OWNER)}\\.[a-z0-9]{8}|(?:paused|limit|batch)\\.${unnamed(OWNER)}\\.[a-z0-9]{8}|(?:clock|dirqueue\\.json)\\.\\d{1,10}\\.[a-z0-9]{8}|(?:schedule|lastrun)\\.\\d{1,10}\\.[a-z0-9]{8}|slot\\.${unnamed(OWNER)}\\.${unnamed(ID)})$`,
);
/** The library's tmp/ helper files that carry their writer's owner token: counter and held-base temps, lock temps. */
const OWNED_DOT_RE = new RegExp(
  `^\\.(?:totals\\.|totals~(?:totals~)?|lock\\.|paused\\.|limit\\.|batch\\.)${OWNER}\\.[a-z0-9]{1,13}$`,
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
  /** HOST.PID.NONCE: the Queue handle that made the claim, whose heartbeat is workers/OWNER. */
  owner: string;
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
    throw new DirQueueError(
      code,
      `${what} is too long: ${out.length} characters once encoded for a file name, at most ${TYPE_MAX_ENCODED}`,
    );
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
  const g = ID_RE.exec(name)?.groups;
  if (g === undefined) return undefined;
  const type = decodeType(g.type!);
  if (type === undefined) return undefined;
  return {
    id: name,
    priority: Number(g.priority),
    enqueuedUs: Number(g.us),
    unique: g.unique!,
    type,
    encodedType: g.type!,
  };
}

export function isId(name: string): boolean {
  return parseId(name) !== undefined;
}

/**
 * isId for a directory of names: the same answer, with each distinct type
 * decoded once. Decoding (decodeURIComponent, then the canonical check) is
 * most of parseId's cost; over a million names it took seconds (issue 17).
 */
export function idTester(): (name: string) => boolean {
  const types = new Map<string, boolean>();
  return (name) => {
    if (!ID_RE.test(name)) return false;
    const encoded = idEncodedType(name);
    let ok = types.get(encoded);
    if (ok === undefined) types.set(encoded, (ok = decodeType(encoded) !== undefined));
    return ok;
  };
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

// Groups and coalescing (FORMAT.md, "Groups" and "Coalescing"): a grouped job's id ends its UNIQUE part
// with the group tag, G and 10 of [a-z0-9]; a job with a coalesce key ends it with the coalesce tag, C and
// 8 of [a-z0-9], after the group tag when it has both (BASE[Gtag][Ctag]), so that the claim index knows
// a job's group and key from its name alone. NameMaker's nonce and counters are lower-case, so an
// upper-case mark followed by exactly its tag's count of [a-z0-9] at the end is a tag; a reader that does not know
// tags sees a valid id and runs the job in plain FIFO order. The longest base is a due job's, 12
// characters (NameMaker.id), so 12 + 11 + 9 fills UNIQUE's 32: hence 8 digits for the coalesce tag.
// A schedule's base is 21 (scheduleUnique): its jobs take a group but no coalesce key.

/** Longest group name, in characters (UTF-16 code units, as String.length counts). */
export const GROUP_MAX = 256;
/** Longest coalesce key, in characters, as GROUP_MAX. */
export const COALESCE_MAX = 256;
const TAG_LENGTH = 10;
const COALESCE_TAG_LENGTH = 8;
/** 'G' */
const GROUP_MARK = 71;
/** 'C' */
const COALESCE_MARK = 67;
/** The unique part of a tagged id: the base, then the mark and the tag. */
const TAG_SUFFIX = TAG_LENGTH + 1;
const COALESCE_SUFFIX = COALESCE_TAG_LENGTH + 1;

/** Throws EBADOPTION unless `group` is a group name: a non-empty, well-formed string of at most GROUP_MAX characters. */
export function checkGroup(group: unknown): string {
  return checkTagged(
    group,
    'group',
    GROUP_MAX,
    "a group names who the job is for, such as a tenant: { group: 'tenant-42' }",
  );
}

/** Throws EBADOPTION unless `key` is a coalesce key: a non-empty, well-formed string of at most COALESCE_MAX characters. */
export function checkCoalesce(key: unknown): string {
  return checkTagged(
    key,
    'coalesce',
    COALESCE_MAX,
    "a coalesce key names the jobs that may be claimed together, such as a user: { coalesce: 'user-7' }",
  );
}

/** The check of a name that becomes a tag (a group, a coalesce key). */
function checkTagged(value: unknown, what: string, max: number, hint: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > max || /\p{Cs}/u.test(value)) {
    const why =
      typeof value !== 'string'
        ? `a string, got ${describe(value)}`
        : value.length === 0
          ? 'a non-empty string, got ""'
          : value.length > max
            ? `at most ${max} characters, got ${value.length}`
            : `well-formed text, got a string with a lone surrogate: ${describe(value)}`;
    throw new DirQueueError('EBADOPTION', `${what} must be ${why} (${hint})`);
  }
  return value;
}

/**
 * The tag of `group` in job ids: the first 10 digits of the SHA-256 of the group (UTF-8) read as a
 * 256-bit big-endian number, written in base 36 (0-9a-z) zero-padded to 50 digits. Two groups may
 * share a tag (about one pair in 10^13 among 10,000 groups): their jobs then take turns as one group.
 */
export function groupTag(group: string): string {
  return hashTag(group, TAG_LENGTH);
}

/**
 * The tag of a coalesce key in job ids: as groupTag's, 8 digits. Two keys may share a tag (about one pair
 * in 10^5 among 10,000 keys): claimMany then checks each job's envelope and leaves the other key's jobs ready.
 */
export function coalesceTag(key: string): string {
  return hashTag(key, COALESCE_TAG_LENGTH);
}

function hashTag(text: string, length: number): string {
  const digest = createHash('sha256').update(text, 'utf8').digest('hex');
  return BigInt(`0x${digest}`).toString(36).padStart(50, '0').slice(0, length);
}

/** The tags that end a job's UNIQUE part: its group's and its coalesce key's (groupTag, coalesceTag). */
export interface Tags {
  group?: string | undefined;
  coalesce?: string | undefined;
}

/** The group tag of an id (or of a rank key, withEnqueuedUs), or '' when it has none; without a regex, for the claim index. */
export function idGroupTag(id: string): string {
  const dot = id.indexOf('.', 20);
  const end = tagBefore(id, 20, dot, COALESCE_MARK, COALESCE_TAG_LENGTH) === '' ? dot : dot - COALESCE_SUFFIX;
  return tagBefore(id, 20, end, GROUP_MARK, TAG_LENGTH);
}

/** The coalesce tag of an id (or of a rank key), or '' when it has none; without a regex, for the claim index. */
export function idCoalesceTag(id: string): string {
  return tagBefore(id, 20, id.indexOf('.', 20), COALESCE_MARK, COALESCE_TAG_LENGTH);
}

/**
 * Whether `id` carries the coalesce tag of `key` (its envelope's `coalesce`; undefined: no tag). A file
 * written by hand may disagree: it still runs, but claimMany gives it no company (FORMAT.md, "Coalescing").
 */
export function coalesceTagAgrees(id: string, key: string | undefined): boolean {
  const tag = idCoalesceTag(id);
  return key === undefined ? tag === '' : tag === coalesceTag(key);
}

/** The unique part of an id without its tags: what names a schedule's jobs (scheduleUnique). */
export function untaggedUnique(unique: string): string {
  let end = unique.length;
  if (end > COALESCE_SUFFIX && tagBefore(unique, 0, end, COALESCE_MARK, COALESCE_TAG_LENGTH) !== '')
    end -= COALESCE_SUFFIX;
  if (end > TAG_SUFFIX && tagBefore(unique, 0, end, GROUP_MARK, TAG_LENGTH) !== '') end -= TAG_SUFFIX;
  return unique.slice(0, end);
}

/** The tag marked `mark` that ends the unique part text[from, end), or ''. */
function tagBefore(text: string, from: number, end: number, mark: number, length: number): string {
  const start = end - length;
  if (end - from < length + 1 || text.charCodeAt(start - 1) !== mark) return '';
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 122))) return '';
  }
  return text.slice(start, end);
}

/** The suffix of UNIQUE that carries `tags` (a string: the group tag alone), '' for none. */
function tagSuffix(tags: Tags | string | undefined): string {
  const t = typeof tags === 'string' ? { group: tags } : (tags ?? {});
  return `${t.group === undefined || t.group === '' ? '' : `G${t.group}`}${t.coalesce === undefined || t.coalesce === '' ? '' : `C${t.coalesce}`}`;
}

export function delayedName(dueUs: number, id: string): string {
  return `${pad16(dueUs)}~${id}`;
}

export function parseDelayedName(name: string): { dueUs: number; id: string } | undefined {
  const g = DELAYED_RE.exec(name)?.groups;
  if (g === undefined || !isId(g.id!)) return undefined;
  return { dueUs: Number(g.due), id: g.id! };
}

export function activeName(id: string, claim: string): string {
  return `${id}@${claim}`;
}

export function parseActiveName(name: string): { id: string; claim: ParsedClaim } | undefined {
  const g = ACTIVE_RE.exec(name)?.groups;
  if (g === undefined || !isId(g.id!)) return undefined;
  return { id: g.id!, claim: claimOf(g) };
}

export function parseClaim(claim: string): ParsedClaim | undefined {
  const g = CLAIM_RE.exec(claim)?.groups;
  return g === undefined ? undefined : claimOf(g);
}

function claimOf(g: Record<string, string | undefined>): ParsedClaim {
  const owner = g.owner!;
  const seq = g.seq!;
  return { claim: `${owner}.${seq}`, owner, host: g.host!, pid: Number(g.pid), nonce: g.nonce!, seq };
}

/** The job and writer of a file in tmp/ (ID.HOST.PID.NONCE.tmp, NameMaker.tmpName), if it is one of ours. */
export function parseTmpName(name: string): { id: string; owner: string } | undefined {
  const g = TMP_RE.exec(name)?.groups;
  return g === undefined ? undefined : { id: g.id!, owner: g.owner! };
}

/**
 * The owner token of the writer of the tmp/ file `name`, when its name
 * carries one (a job being written, a counter or lock temp), so that a sweep
 * can remove it as soon as that writer is gone rather than by age.
 */
export function tmpWriterOf(name: string): string | undefined {
  return parseTmpName(name)?.owner ?? OWNED_DOT_RE.exec(name)?.groups?.owner;
}

/**
 * Whether `name` is one the library makes in tmp/, the only names sweeps
 * delete there: a file another user put in tmp/ is not the library's to
 * delete (dirq fsck names it).
 */
export function isLibraryTmpName(name: string): boolean {
  return TMP_RE.test(name) || LIBRARY_DOT_RE.test(name);
}

/** Whether `name` is a Queue handle's owner token (HOST.PID.NONCE): the name of its heartbeat in workers/. */
export function isOwnerName(name: string): boolean {
  return OWNER_RE.test(name);
}

/** The parts of an owner token (HOST.PID.NONCE), the name of a heartbeat in workers/. */
export function parseOwner(name: string): Omit<ParsedClaim, 'claim' | 'seq'> | undefined {
  const g = OWNER_RE.exec(name)?.groups;
  return g === undefined ? undefined : { owner: name, host: g.host!, pid: Number(g.pid), nonce: g.nonce! };
}

/** The name of the `seq`th counter delta written by `owner` (NameMaker.owner). */
export function deltaName(owner: string, seq: number): string {
  return `totals.${owner}.${seq.toString(36)}`;
}

/** Whether `name` is a counter delta's name; only such names, read from a file, may become a path. */
export function isDeltaName(name: string): boolean {
  return DELTA_RE.test(name);
}

// The library's own files beside the jobs (FORMAT.md, "Helper files").

/** workers/.lock: the maintenance lock (sweep-lock.ts); a dot file, never an owner's name. */
export const LOCK_FILE = '.lock';
/** workers/.clock: the file sweeps touch to read the filesystem's clock (liveness.ts). */
export const CLOCK_FILE = '.clock';
/** workers/totals: the counters folded so far (totals.ts). */
export const TOTALS_BASE = 'totals';

/** tmp/.lock.OWNER.TOKEN: a maintenance lock being made, then linked to workers/.lock. */
export function lockTmpName(owner: string): string {
  return `${LOCK_FILE}.${owner}.${randomToken(8)}`;
}

/** workers/.lock~TOKEN: where a takeover moves a stale lock before removing it. */
export function lockAsideName(): string {
  return `${LOCK_FILE}~${randomToken(8)}`;
}

export function isLockAsideName(name: string): boolean {
  return name.startsWith(`${LOCK_FILE}~`);
}

/** tmp/.clock.PID.TOKEN: a scratch file for the filesystem's clock when workers/.clock cannot be used. */
export function scratchClockName(): string {
  return `${CLOCK_FILE}.${process.pid}.${randomToken(8)}`;
}

/** tmp/.NAME.PID.TOKEN: the replacement of the file `name` (dirqueue.json) being written. */
export function replacementName(name: string): string {
  return `.${name}.${process.pid}.${randomToken(8)}`;
}

/** keys/.stale.TOKEN: a key link being handed over or taken from a dead holder (keys.ts). */
export function keyScratchName(): string {
  return `.stale.${randomToken(8)}`;
}

export function isKeyScratchName(name: string): boolean {
  return name.startsWith('.stale.');
}

/** workers/totals~TOKEN: the counter base while the fold whose token it carries rewrites it. */
export function heldBaseName(token: string): string {
  return `${TOTALS_BASE}~${token}`;
}

export function isHeldBaseName(name: string): boolean {
  return name.startsWith(`${TOTALS_BASE}~`);
}

/** workers/.done-checked.HOST.BOOTID: this host checked done/ for torn results once since boot BOOTID (maintenance/torn.ts). */
export function doneCheckedName(host: string, bootId: string): string {
  return `.done-checked.${host}.${bootId}`;
}

/** Whether `name` is a done-checked marker of `host`, of any boot. */
export function isDoneCheckedNameOf(name: string, host: string): boolean {
  return name.startsWith(`.done-checked.${host}.`);
}

/** Whether `name` in delayed/ is job `id`'s (the suffix test first: locate's scan is of every delayed job). */
export function isDelayedNameOf(name: string, id: string): boolean {
  return name.endsWith(`~${id}`) && parseDelayedName(name)?.id === id;
}

/** Whether `name` in active/ is job `id`'s (the prefix test first, as above). */
export function isActiveNameOf(name: string, id: string): boolean {
  return name.startsWith(`${id}@`) && parseActiveName(name)?.id === id;
}

// Dependencies and batches (FORMAT.md, "Dependencies and batches").

/**
 * waiting/ID@CLAIM: a waiting job being released by the holder of CLAIM (the
 * shape of a claim in active/): the rename to this name is the single-winner
 * step of a release, and a sweep finishes one whose releaser died.
 */
export const releasingName = activeName;

/** A name in waiting/: the job's id, with the claim of its releaser when one is releasing it. */
export function parseWaitingName(name: string): { id: string; claim: ParsedClaim | undefined } | undefined {
  if (isId(name)) return { id: name, claim: undefined };
  const releasing = parseActiveName(name);
  return releasing === undefined ? undefined : { id: releasing.id, claim: releasing.claim };
}

/** Whether `name` in waiting/ is job `id`'s, waiting or being released. */
export function isWaitingNameOf(name: string, id: string): boolean {
  return name === id || isActiveNameOf(name, id);
}

/**
 * A batch's id, the name of its directory in batches/: `b`, the time it was
 * made (16 digits of us) and 8 of [a-z0-9], so that `ls batches/` lists them
 * oldest first.
 */
export function batchId(): string {
  return `b${pad16(nowUs())}${randomToken(8)}`;
}

const BATCH_ID_RE = /^b\d{16}[a-z0-9]{8}$/;

export function isBatchId(value: unknown): value is string {
  return typeof value === 'string' && BATCH_ID_RE.test(value);
}

/** The file in a batch's directory that says what the batch is; written last, by one rename (batches.ts). */
export const BATCH_FILE = 'batch.json';

/** A batch's members by outcome: pending/ID until the member ends, then done/ID or failed/ID (one rename). */
export const BATCH_MEMBER_DIRS = ['pending', 'done', 'failed'] as const;

/** tmp/ name of a batch file being written. */
export function batchTmpName(owner: string): string {
  return `.batch.${owner}.${randomToken(8)}`;
}

// Pauses and cancels (FORMAT.md, "Pause and cancel").

/**
 * paused/@all: the pause of the whole queue. `@` is outside the type alphabet,
 * so no type's pause has this name; not a dot file, which `ls` would hide.
 */
export const PAUSE_ALL = '@all';
/** The directory of pause files, and of cancel requests, in the queue directory. */
export const PAUSED_DIR = 'paused';
export const CANCEL_DIR = 'cancel';

/**
 * The name in paused/ of the pause of `type` (the whole queue when undefined):
 * the type encoded as in job names, a leading `.` written `%2E` (as keys), so
 * that no type's pause is a dot file (nor `@all`). Throws EBADTYPE for a type no
 * job can have.
 */
export function pauseName(type: string | undefined): string {
  if (type === undefined) return PAUSE_ALL;
  const encoded = encodeType(type);
  return encoded.startsWith('.') ? `%2E${encoded.slice(1)}` : encoded;
}

/** What a name in paused/ pauses: { type } (undefined: the whole queue), or undefined when it is no pause's name. */
export function parsePauseName(name: string): { type: string | undefined } | undefined {
  if (name === PAUSE_ALL) return { type: undefined };
  if (name.startsWith('.')) return undefined;
  const encoded = name.startsWith('%2E') ? `.${name.slice(3)}` : name;
  if (!new RegExp(`^${TYPE_ENCODED}$`).test(encoded)) return undefined;
  const type = decodeType(encoded);
  return type !== undefined && pauseName(type) === name ? { type } : undefined;
}

/** tmp/.paused.OWNER.TOKEN: a pause file being written by OWNER, or an ended one a sweep set aside before deleting it. */
export function pauseTmpName(owner: string): string {
  return `.paused.${owner}.${randomToken(8)}`;
}

/** cancel/ID@CLAIM: the request to cancel the claim CLAIM of job ID (the job's active/ name). */
export function cancelName(id: string, claim: string): string {
  return activeName(id, claim);
}

/** The job and claim a name in cancel/ asks to cancel; undefined when it is no cancel request's name. */
export function parseCancelName(name: string): { id: string; claim: ParsedClaim } | undefined {
  return parseActiveName(name);
}

// Limits (FORMAT.md, "Limits"): limits/TYPE/ holds a type's limit.json, its running slots and its rate tokens.

/** The directory of limits in the queue directory, and a limit's file in its type's directory. */
export const LIMITS_DIR = 'limits';
export const LIMIT_FILE = 'limit.json';

/** limits/NAME: the directory of the limits of `type`, its name encoded as a pause's (never a dot file). */
export function limitDirName(type: string): string {
  return pauseName(type);
}

/** The type whose limits a directory in limits/ holds; undefined when the name is no type's. */
export function parseLimitDirName(name: string): string | undefined {
  if (name === PAUSE_ALL) return undefined;
  return parsePauseName(name)?.type;
}

const SLOT_RE = /^(?:g\.(?<tag>[a-z0-9]{10})\.)?(?<k>0|[1-9]\d{0,5})$/;
const RATE_TOKEN_RE = /^r\.(?<k>0|[1-9]\d{0,5})@(?<us>\d{16})$/;
const REAP_RE = new RegExp(`^\\.reap\\.${OWNER}\\.[a-z0-9]{8}$`);

/**
 * limits/TYPE/K: running slot K of the type (0 <= K < concurrency); limits/TYPE/g.TAG.K: slot K of the
 * group tagged TAG (idGroupTag). A slot is held while the name exists, as a hard link to its holder's
 * heartbeat (workers/OWNER), made by link(2), which fails when the name is taken.
 */
export function slotName(k: number, tag?: string): string {
  return tag === undefined || tag === '' ? String(k) : `g.${tag}.${k}`;
}

export function parseSlotName(name: string): { k: number; tag: string | undefined } | undefined {
  const g = SLOT_RE.exec(name)?.groups;
  return g === undefined ? undefined : { k: Number(g.k), tag: g.tag };
}

/** limits/TYPE/r.K@T: rate token K of the type, last used to start a job at T (µs, the filesystem's clock; 0: never). */
export function rateTokenName(k: number, usedUs: number): string {
  return `r.${k}@${pad16(usedUs)}`;
}

export function parseRateTokenName(name: string): { k: number; usedUs: number } | undefined {
  const g = RATE_TOKEN_RE.exec(name)?.groups;
  return g === undefined ? undefined : { k: Number(g.k), usedUs: Number(g.us) };
}

/** limits/TYPE/.reap.OWNER.TOKEN: a gone holder's slot that OWNER's sweep moved aside to delete (the name that moved is the one judged). */
export function reapName(owner: string): string {
  return `.reap.${owner}.${randomToken(8)}`;
}

/** The sweeper (OWNER) that moved the slot `name` aside, or undefined when it is no reaped slot's name. */
export function parseReapName(name: string): string | undefined {
  return REAP_RE.exec(name)?.groups?.owner;
}

/** tmp/.limit.OWNER.TOKEN: a limit file being written by OWNER, then renamed to limits/TYPE/limit.json; or a rate token being made. */
export function limitTmpName(owner: string): string {
  return `.limit.${owner}.${randomToken(8)}`;
}

/** NAME~, then NAME.2~, ...: the `n`th name fsck --repair tries for a stray it sets aside in its own directory. */
export function setAsideName(name: string, n: number): string {
  return n === 1 ? `${name}~` : `${name}.${n}~`;
}

/** Whether `name` was set aside by fsck: no reader and no check looks at it again. */
export function isSetAsideName(name: string): boolean {
  return name.endsWith('~');
}

/** tmp/.NAME: a counter file (a delta or a base) being written, then renamed to workers/NAME. */
export function counterTmpName(name: string): string {
  return `.${name}`;
}

// Schedules (FORMAT.md, "Schedules"): schedules/NAME.json is a schedule a person may cat and edit;
// schedules/.NAME@SLOT is its cursor (every slot up to SLOT is handled), .NAME@SLOT@OWNER the cursor
// while OWNER makes SLOT's job, .NAME.last a symbolic link to the job of its latest run.

/** A schedule's name: what its file is called, less `.json`. */
const SCHEDULE_NAME = '[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}';
const SCHEDULE_NAME_RE = new RegExp(`^${SCHEDULE_NAME}$`);
const SPEC_FILE_RE = new RegExp(`^(?<name>${SCHEDULE_NAME})\\.json$`);
const CURSOR_RE = new RegExp(`^\\.(?<name>${SCHEDULE_NAME})@(?<slot>\\d{16})(?:@${OWNER})?$`);
const LAST_RUN_RE = new RegExp(`^\\.(?<name>${SCHEDULE_NAME})\\.last$`);
const SLOT_TMP_RE = new RegExp(`^\\.slot\\.${OWNER}\\.(?<id>${ID})$`);
/** Longest schedule name: keeps .NAME@SLOT@OWNER and the job's tmp/ name under NAME_MAX (255). */
export const SCHEDULE_NAME_MAX = 100;

/** Whether `name` can name a schedule: 1 to 100 of [A-Za-z0-9_.-], not starting with a dot. */
export function isScheduleName(name: unknown): name is string {
  return typeof name === 'string' && SCHEDULE_NAME_RE.test(name);
}

/** schedules/NAME.json: the schedule file. */
export function scheduleFileName(name: string): string {
  return `${name}.json`;
}

/** The schedule a file in schedules/ holds, or undefined when the name is not NAME.json. */
export function parseScheduleFileName(file: string): string | undefined {
  return SPEC_FILE_RE.exec(file)?.groups?.name;
}

/**
 * schedules/.NAME@SLOT: the cursor of schedule `name`, every slot up to `slotUs` handled (0: none yet;
 * the cursor's mtime is then when it was made); with `owner`, the cursor while that Queue handle
 * (HOST.PID.NONCE) makes the job of slot `slotUs`.
 */
export function cursorName(name: string, slotUs: number, owner?: string): string {
  return owner === undefined ? `.${name}@${pad16(slotUs)}` : `.${name}@${pad16(slotUs)}@${owner}`;
}

export function parseCursorName(file: string): { name: string; slotUs: number; owner: string | undefined } | undefined {
  const g = CURSOR_RE.exec(file)?.groups;
  return g === undefined ? undefined : { name: g.name!, slotUs: Number(g.slot), owner: g.owner };
}

/** schedules/.NAME.last: a symbolic link whose target is the id of the schedule's latest run. */
export function lastRunName(name: string): string {
  return `.${name}.last`;
}

export function parseLastRunName(file: string): string | undefined {
  return LAST_RUN_RE.exec(file)?.groups?.name;
}

/** This process's token in the names below: one name per process, which a retry after a failure reuses. */
const PROCESS_TOKEN = randomToken(8);

/**
 * tmp/.schedule.PID.TOKEN: a schedule file being written, then renamed to schedules/NAME.json. One name per
 * process (writes are one at a time, schedule-files.ts), so a write that failed half-way is removed by the next.
 */
export function scheduleTmpName(): string {
  return `.schedule.${process.pid}.${PROCESS_TOKEN}`;
}

/** tmp/.lastrun.PID.TOKEN: a last-run link being made, then renamed over schedules/.NAME.last (one per process, as above). */
export function lastRunTmpName(): string {
  return `.lastrun.${process.pid}.${PROCESS_TOKEN}`;
}

/** tmp/.slot.OWNER.ID: the job of a slot, written by `owner` before it takes the cursor. */
export function slotTmpName(owner: string, id: string): string {
  return `.slot.${owner}.${id}`;
}

export function parseSlotTmpName(file: string): { owner: string; id: string } | undefined {
  const g = SLOT_TMP_RE.exec(file)?.groups;
  return g === undefined ? undefined : { owner: g.owner!, id: g.id! };
}

/**
 * The unique part of the ids of schedule `name`'s jobs: `s` and 20 base-36 digits of the SHA-256 of
 * the name, so a job's id names its schedule and its slot (the id's time) and the jobs of two
 * schedules never share an id.
 */
export function scheduleUnique(name: string): string {
  const digest = createHash('sha256').update(name).digest();
  return `s${BigInt(`0x${digest.subarray(0, 14).toString('hex')}`)
    .toString(36)
    .padStart(20, '0')
    .slice(-20)}`;
}

/** The id of schedule `name`'s job for the slot at `slotUs`: the slot is its ready time; `tag`: its group's (groupTag). */
export function scheduledJobId(
  name: string,
  priority: number,
  encodedType: string,
  slotUs: number,
  tag?: string,
): string {
  return `${String(priority).padStart(2, '0')}-${pad16(slotUs)}-${scheduleUnique(name)}${tagSuffix(tag)}.${encodedType}`;
}

function pad16(us: number): string {
  if (!Number.isSafeInteger(us) || us < 0 || us >= 1e16) {
    throw new DirQueueError('EBADOPTION', `time out of range: ${us} microseconds since the epoch`);
  }
  return String(us).padStart(16, '0');
}

/** This host's name as it appears in claim tokens: [A-Za-z0-9-], at most 32 characters. */
export function hostToken(name = hostname()): string {
  const token = name
    .split('.')[0]!
    .replace(/[^A-Za-z0-9-]/g, '-')
    .slice(0, 32);
  return token.length > 0 ? token : 'host';
}

export function randomToken(length: number): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let out = '';
  for (const byte of randomBytes(length)) out += alphabet[byte % 36]!;
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
   * microsecond keep the order they were made in. `tag`: the job's group
   * tag (groupTag), which ends the unique part as G and the tag, or its tags
   * (then the coalesce tag, coalesceTag, as C and the tag): at most 12 + 11 + 9 = 32.
   */
  id(priority: number, encodedType: string, dueUs?: number, tag?: string | Tags): string {
    let unique = this.#nonce;
    let us: number;
    if (dueUs === undefined) {
      us = Math.max(this.#clock(), this.#lastUs + 1);
      this.#lastUs = us;
    } else {
      us = dueUs;
      unique += (this.#dueSeq++).toString(36).padStart(6, '0');
    }
    unique += tagSuffix(tag);
    if (unique.length > UNIQUE_MAX) {
      throw new DirQueueError(
        'EBADOPTION',
        `a job id's unique part would be ${unique.length} characters (${unique}), at most ${UNIQUE_MAX}: the job's tags (group, coalesce key) do not fit; give it fewer`,
      );
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
