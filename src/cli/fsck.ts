/** dirq fsck DIR [--repair]: find (and fix) damage in a queue directory. */
import { fsck as check, type FsckReport } from '../maintenance/fsck.js';
import { EXIT_CHECK, parse, print, printJson, table, type Command } from './common.js';

export const fsck: Command = {
  name: 'fsck',
  summary: 'check a queue for damage (exit 3); --repair fixes it',
  help: `Usage: dirq fsck DIR [--repair] [--json]

Check the queue in DIR against FORMAT.md and report each problem: files
abandoned in tmp/ (over an hour old), a job in two states (a copy or a hard
link), job files that cannot run (not JSON, not a regular file, too big,
a type that differs from the name), helper files left by processes that
died (heartbeats in workers/, keys in keys/ of jobs that ended, the
maintenance lock, temporary settings files), a missing dirqueue.json or
directory, and names in the state directories (or keys/) that are not
jobs (readers skip them). In limits/: a limit.json that cannot be used
(reported, never changed: fix it, set the limit again or clear it), the
running slot of a worker that is gone, a sweeper's leftover (.reap.*),
rate tokens that do not match the limit, and names that are no type's
directory, slot or token. Dot files and names ending in ~ are skipped.

--repair fixes what it safely can while workers run: deletes the abandoned
and stale files; of a duplicated job keeps the copy that proves the furthest
progress (a done/ copy with its result, a failed/ copy with the error that
ended it, a claim in active/, then a waiting copy) and deletes the others (a
done/ or failed/ copy that records no end never ran there); sets unrunnable
jobs aside in failed/ with the reason; renames a name that is not a job to
NAME~ in place (set aside, never deleted); frees the slots of gone workers
and makes or deletes rate tokens as a sweep does; recreates what is missing.

Exits 0 when the queue is clean (or --repair fixed everything it found),
3 when damage is left.

Options:
  --repair   fix what can be fixed
  --json     print {"schema": 1, "dir": DIR, "checked": N, "unrepaired": N, "findings":
             [{"kind", "path", "problem", "action", "repaired"}, ...]}
  --debug    print the stack trace of an error
  -h, --help show this help

Examples:
  dirq fsck /var/spool/mail-out
  dirq fsck /var/spool/mail-out --repair
`,
  async run(args) {
    const parsed = parse(this, args, { repair: { type: 'boolean' }, json: { type: 'boolean' } }, { min: 1, max: 1 });
    if (parsed === undefined) return 0;
    const report = await check(parsed.positionals[0]!, { repair: parsed.values.repair === true });
    if (parsed.values.json === true) printJson(report);
    else print(render(report));
    return report.unrepaired > 0 ? EXIT_CHECK : 0;
  },
};

function render(r: FsckReport): string {
  const jobs = `${r.checked} job file${r.checked === 1 ? '' : 's'} checked`;
  if (r.findings.length === 0) return `${r.dir}: clean (${jobs})`;
  const repaired = r.findings.length - r.unrepaired;
  const summary = `${r.dir}: ${r.findings.length} problem${r.findings.length === 1 ? '' : 's'}, ${repaired} repaired (${jobs})`;
  const rows = r.findings.map((f) => [f.kind, f.path, `${f.problem}: ${f.action}`]);
  return `${table(['KIND', 'PATH', 'PROBLEM'], rows)}\n\n${summary}`;
}
