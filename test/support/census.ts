/** Where every job of a queue directory is, straight from the file names. */
import fs from 'node:fs';
import path from 'node:path';
import { idOfName } from '../../dist/store/locate.js';
import { STATES, type State } from '../../dist/store/layout.js';

/** id -> the states it appears in (a healthy queue has exactly one each, I1). */
export function census(dir: string): Map<string, State[]> {
  const where = new Map<string, State[]>();
  for (const state of STATES) {
    for (const name of fs.readdirSync(path.join(dir, state))) {
      const id = idOfName(state, name);
      if (id === undefined) continue;
      const states = where.get(id) ?? [];
      states.push(state);
      where.set(id, states);
    }
  }
  return where;
}

/** Ids that are in more than one state. */
export function duplicates(dir: string): [string, State[]][] {
  return [...census(dir)].filter(([, states]) => states.length !== 1);
}
