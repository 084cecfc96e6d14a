/**
 * Checks that a value survives JSON.stringify + JSON.parse unchanged, so job
 * data and results read back exactly as they were given. What JSON would
 * silently drop or change (functions, symbols, undefined in arrays, NaN,
 * Infinity, Dates, Maps, class instances) or cannot encode (BigInt, cycles)
 * is rejected with the path to the offending value.
 */
import { DirQueueError } from './errors.js';

export function checkJson(value: unknown, what: string): void {
  const problem = findProblem(value, what, new Set());
  if (problem !== undefined) throw new DirQueueError('EBADDATA', problem);
}

function findProblem(value: unknown, path: string, seen: Set<object>): string | undefined {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined;
    case 'number':
      return Number.isFinite(value) ? undefined : `${path} is ${value}, which JSON turns into null`;
    case 'bigint':
      return `${path} is a BigInt, which JSON cannot encode: pass it as a string`;
    case 'function':
      return `${path} is a function, which JSON cannot hold`;
    case 'symbol':
      return `${path} is a symbol, which JSON cannot hold`;
    case 'undefined':
      return `${path} is undefined, which JSON cannot hold: use null or leave the key out`;
  }
  if (value === null) return undefined;
  const object = value as object;
  if (seen.has(object)) return `${path} is a circular reference, which JSON cannot encode`;
  if (Array.isArray(object)) {
    seen.add(object);
    for (let i = 0; i < object.length; i++) {
      if (!(i in object)) return `${path}[${i}] is a hole in a sparse array, which JSON turns into null`;
      const problem = findProblem(object[i], `${path}[${i}]`, seen);
      if (problem !== undefined) return problem;
    }
    seen.delete(object);
    return undefined;
  }
  const proto = Object.getPrototypeOf(object) as unknown;
  if (proto !== Object.prototype && proto !== null) {
    const kind = (object as { constructor?: { name?: string } }).constructor?.name ?? 'an exotic object';
    const hint = object instanceof Date ? ': pass date.toISOString()' : ': pass a plain object or array';
    return `${path} is a ${kind}, which JSON does not read back as it was${hint}`;
  }
  if (Object.getOwnPropertySymbols(object).length > 0) return `${path} has symbol keys, which JSON drops`;
  seen.add(object);
  for (const [key, item] of Object.entries(object)) {
    if (item === undefined) continue; // a missing key reads back as undefined too
    const problem = findProblem(item, `${path}.${key}`, seen);
    if (problem !== undefined) return problem;
  }
  seen.delete(object);
  return undefined;
}
