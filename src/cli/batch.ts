/** dirq batch DIR ID: how a batch stands (enqueueBatch): its jobs by outcome and its callbacks. */
import type { BatchInfo } from '../queue/batch.js';
import { parse, print, printJson, withQueue, type Command } from './common.js';

export const batch: Command = {
  name: 'batch',
  summary: 'how a batch stands: its jobs by outcome, and whether its callbacks were made',
  help: `Usage: dirq batch DIR ID [--json]

Show the batch ID of the queue in DIR (the id enqueueBatch returned, the
name of its directory in DIR/batches/): how many of its jobs are pending,
done and failed (failed for good, cancelled or removed), and where each
callback is: waiting until the batch ends, then made (queue, active, done,
failed), or skipped (an onSuccess of a batch with a failure is never run).
An ended batch is kept 7 days.

Options:
  --json      print {"schema": 1, "id", "total", "pending", "done", "failed",
              "failedIds", "createdAt", "ended", "onComplete"?: {"id",
              "state"}, "onSuccess"?: {"id", "state"}}
  --debug     print the stack trace of an error
  -h, --help  show this help

Examples:
  dirq batch /var/spool/mail-out b1796299522258405el2zkrcn
  dirq batch /var/spool/mail-out b1796299522258405el2zkrcn --json
`,
  async run(args) {
    const parsed = parse(this, args, { json: { type: 'boolean' } }, { min: 2, max: 2 });
    if (parsed === undefined) return 0;
    const [dir, id] = parsed.positionals as [string, string];
    const info = await withQueue(dir, (q) => q.batch(id));
    if (parsed.values.json === true) printJson(info);
    else print(render(info));
    return 0;
  },
};

function render(info: BatchInfo): string {
  const rows: [string, string][] = [
    ['BATCH', info.id],
    ['CREATED', info.createdAt.toISOString()],
    ['JOBS', `${info.total}: ${info.pending} pending, ${info.done} done, ${info.failed} failed`],
    ['ENDED', info.ended ? 'yes' : 'no'],
  ];
  if (info.onComplete !== undefined) rows.push(['ONCOMPLETE', `${info.onComplete.id} (${info.onComplete.state})`]);
  if (info.onSuccess !== undefined) rows.push(['ONSUCCESS', `${info.onSuccess.id} (${info.onSuccess.state})`]);
  if (info.failedIds.length > 0) rows.push(['FAILED', info.failedIds.slice(0, 20).join('\n')]);
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v.replaceAll('\n', `\n${' '.repeat(width + 2)}`)}`).join('\n');
}
