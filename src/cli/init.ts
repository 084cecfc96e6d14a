/** dirq init DIR: create a queue directory (or check an existing one). */
import { Queue } from '../queue.js';
import { parse, print, printJson, type Command } from './common.js';

export const init: Command = {
  name: 'init',
  summary: 'create a queue directory',
  help: `Usage: dirq init DIR [--json]

Create the queue layout in DIR (dirqueue.json, tmp/, queue/, delayed/,
active/, done/, failed/, workers/; see FORMAT.md). DIR may be missing or
empty; an existing queue is left as it is. Prints the queue's absolute path.

Options:
  --json     print {"dir": ...}
  --debug    print the stack trace of an error
  -h, --help show this help

Example:
  dirq init /var/spool/mail-out
`,
  async run(args) {
    const parsed = parse(this, args, { json: { type: 'boolean' } }, { min: 1, max: 1 });
    if (parsed === undefined) return 0;
    const q = await Queue.open(parsed.positionals[0]!, { create: true, watch: false });
    await q.close();
    if (parsed.values.json === true) printJson({ dir: q.dir });
    else print(q.dir);
    return 0;
  },
};
