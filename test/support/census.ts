/** Where every job of a queue directory is, straight from the file names. */
import fs from 'node:fs';
import path from 'node:path';
import { idOfName } from '../../dist/store/locate.js';
import { isDelayedNameOf } from '../../dist/store/names.js';
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

/** Whether job `id`, found in two `states`, is one file at its name in active/ and at its name in the other state. */
export function oneFileAtBoth(dir: string, id: string, states: readonly State[]): boolean {
  const [other, ...more] = states.filter((s) => s !== 'active');
  if (!states.includes('active') || other === undefined || more.length > 0) return false;
  const inode = (state: State, matches: (name: string) => boolean): string | undefined => {
    const names = fs.readdirSync(path.join(dir, state)).filter(matches);
    if (names.length !== 1) return undefined;
    const stat = fs.lstatSync(path.join(dir, state, names[0]!));
    return `${stat.dev}:${stat.ino}`;
  };
  const claimed = inode('active', (name) => name.startsWith(`${id}@`));
  const ended = inode(other, (name) => (other === 'delayed' ? isDelayedNameOf(name, id) : name === id));
  return claimed !== undefined && claimed === ended;
}
