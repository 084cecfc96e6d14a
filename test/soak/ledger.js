/**
 * The soak's ledger: what each process saw acknowledged, one JSON object a
 * line, in files outside the queue (one file per process; worker threads
 * append to their process's file). Each line is one write(2) of the whole
 * line to a file opened O_APPEND, so a SIGKILL leaves whole lines only and
 * lines of several writers never interleave. Nothing is fsynced: the soak
 * kills processes, never the machine.
 */
import fs from 'node:fs';
import path from 'node:path';

/**
 * A writer for `file`: `note(ev, fields)` appends { t, pid, ev, ...fields }.
 * @param {string | undefined} file
 * @returns {(ev: string, fields?: Record<string, unknown>) => void}
 */
export function openLedger(file) {
  if (file === undefined) throw new Error('openLedger: no ledger file (SOAK_LEDGER is not set)');
  const fd = fs.openSync(file, 'a');
  return (ev, fields = {}) => {
    fs.writeSync(fd, `${JSON.stringify({ t: Date.now(), pid: process.pid, ev, ...fields })}\n`);
  };
}

/** @typedef {{ t: number, file: string } & Record<string, unknown>} LedgerLine */

/**
 * Every line of every ledger file in `dir`, oldest first; `torn` counts lines that did not parse.
 * @param {string} dir
 * @returns {{ entries: LedgerLine[], torn: number }}
 */
export function readLedger(dir) {
  /** @type {LedgerLine[]} */
  const entries = [];
  let torn = 0;
  for (const name of fs
    .readdirSync(dir)
    .filter((n) => n.endsWith('.jsonl'))
    .sort()) {
    for (const line of fs.readFileSync(path.join(dir, name), 'utf8').split('\n')) {
      if (line === '') continue;
      try {
        entries.push({ .../** @type {{ t: number }} */ (JSON.parse(line)), file: name });
      } catch {
        torn++;
      }
    }
  }
  entries.sort((a, b) => a.t - b.t);
  return { entries, torn };
}
