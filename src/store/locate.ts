/**
 * Finding a job's file by its id, and a job's id by its file name, in every
 * state (FORMAT.md, "Directories" and "File names"). Below the queue because unique keys
 * (keys.ts) must find the job that holds a key, and fsck the job a name is.
 */
import { listDir } from './files.js';
import { lstatQuietly } from './entry.js';
import type { Layout, State } from './layout.js';
import {
  isActiveNameOf,
  isDelayedNameOf,
  idTester,
  isId,
  isWaitingNameOf,
  parseActiveName,
  parseDelayedName,
  parseWaitingName,
} from './names.js';

/** Where a job's file is, by state; undefined when it is nowhere. */
export function locate(layout: Layout, id: string): { state: State; name: string } | undefined {
  // Probe in lifecycle order, twice: a job moving while we look is found on the second pass.
  for (let pass = 0; pass < 2; pass++) {
    if (lexists(layout.file('waiting', id))) return { state: 'waiting', name: id };
    if (lexists(layout.file('queue', id))) return { state: 'queue', name: id };
    const delayed = listDir(layout.paths.delayed).find((n) => isDelayedNameOf(n, id));
    if (delayed !== undefined) return { state: 'delayed', name: delayed };
    const active = listDir(layout.paths.active).find((n) => isActiveNameOf(n, id));
    if (active !== undefined) return { state: 'active', name: active };
    if (lexists(layout.file('done', id))) return { state: 'done', name: id };
    if (lexists(layout.file('failed', id))) return { state: 'failed', name: id };
    // last: a waiting job being released (waiting/ID@CLAIM) is there only for a moment, or after its releaser died
    const releasing = listDir(layout.paths.waiting).find((n) => n !== id && isWaitingNameOf(n, id));
    if (releasing !== undefined) return { state: 'waiting', name: releasing };
  }
  return undefined;
}

/** The job id inside a file name of `state`, or undefined if the name is not a job of that state. */
export function idOfName(state: State, name: string): string | undefined {
  switch (state) {
    case 'delayed':
      return parseDelayedName(name)?.id;
    case 'active':
      return parseActiveName(name)?.id;
    case 'waiting':
      return parseWaitingName(name)?.id;
    default:
      return isId(name) ? name : undefined;
  }
}

/**
 * idOfName for many names of one state: a test of each name, with the types
 * decoded once each (names.ts idTester), and the id it holds.
 */
export function jobNameReader(state: State): { isJob: (name: string) => boolean; idOf: (name: string) => string } {
  switch (state) {
    case 'delayed':
    case 'active':
    case 'waiting':
      // small directories, or names that carry more than an id: the full parse
      return { isJob: (name) => idOfName(state, name) !== undefined, idOf: (name) => idOfName(state, name)! };
    default:
      return { isJob: idTester(), idOf: (name) => name };
  }
}

/** Whether anything is at `path` (a symlink counts: it is not followed). */
export function lexists(path: string): boolean {
  return lstatQuietly(path) !== undefined;
}
