/**
 * Checks that a value survives JSON.stringify + JSON.parse unchanged, so job
 * data and results read back exactly as they were given. What JSON would
 * silently drop or change (functions, symbols, undefined in arrays, NaN,
 * Infinity, Dates, Maps, class instances) or cannot encode (BigInt, cycles)
 * is rejected with the path to the offending value.
 *
 * Every enqueue and every completion runs this, so a value that passes costs
 * no allocation but the stack of objects being walked: the path to a problem
 * is put together only once one is found, on the way back up (building
 * `data.a.b` for every key visited cost an enqueue 3-4 us in a --cpu-prof).
 */
import { DirQueueError } from './errors.js';

export function checkJson(value: unknown, what: string): void {
  const problem = findProblem(value, []);
  if (problem !== undefined) {
    throw new DirQueueError('EBADDATA', problem.says(what + problem.steps.reverse().join('')));
  }
}

/** What is wrong, said of the offending value's path; `steps` lead to it from the top, innermost first. */
interface Problem {
  says: (path: string) => string;
  steps: string[];
}

const problem = (says: (path: string) => string): Problem => ({ says, steps: [] });

/** `walking`: the objects from the top down to `value`'s parent (a value among them is a cycle). */
function findProblem(value: unknown, walking: object[]): Problem | undefined {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined;
    case 'number':
      return Number.isFinite(value) ? undefined : problem((path) => `${path} is ${value}, which JSON turns into null`);
    case 'bigint':
      return problem((path) => `${path} is a BigInt, which JSON cannot encode: pass it as a string`);
    case 'function':
      return problem((path) => `${path} is a function, which JSON cannot hold`);
    case 'symbol':
      return problem((path) => `${path} is a symbol, which JSON cannot hold`);
    case 'undefined':
      return problem((path) => `${path} is undefined, which JSON cannot hold: use null or leave the key out`);
  }
  if (value === null) return undefined;
  const object = value as object;
  // a linear search: the walk is as deep as the value is nested, a handful of levels for job data
  if (walking.includes(object)) return problem((path) => `${path} is a circular reference, which JSON cannot encode`);
  if (Array.isArray(object)) {
    walking.push(object);
    for (let i = 0; i < object.length; i++) {
      const found =
        i in object
          ? findProblem(object[i], walking)
          : problem((path) => `${path} is a hole in a sparse array, which JSON turns into null`);
      if (found !== undefined) {
        found.steps.push(`[${i}]`);
        return found;
      }
    }
    walking.pop();
    return undefined;
  }
  const proto = Object.getPrototypeOf(object) as unknown;
  if (proto !== Object.prototype && proto !== null) {
    const kind = (object as { constructor?: { name?: string } }).constructor?.name ?? 'an exotic object';
    const hint = object instanceof Date ? ': pass date.toISOString()' : ': pass a plain object or array';
    return problem((path) => `${path} is a ${kind}, which JSON does not read back as it was${hint}`);
  }
  if (Object.getOwnPropertySymbols(object).length > 0)
    return problem((path) => `${path} has symbol keys, which JSON drops`);
  walking.push(object);
  for (const key of Object.keys(object)) {
    const item = (object as Record<string, unknown>)[key];
    if (item === undefined) continue; // a missing key reads back as undefined too
    const found = findProblem(item, walking);
    if (found !== undefined) {
      found.steps.push(`.${key}`);
      return found;
    }
  }
  walking.pop();
  return undefined;
}
