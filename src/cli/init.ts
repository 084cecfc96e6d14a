/** dirq init DIR [--mode 0660]: create a queue directory (or check an existing one). */
import fs from 'node:fs';
import path from 'node:path';
import { DirQueueError } from '../store/errors.js';
import { formatMode, modeOfRoot, parseMode, readSettings, SETTINGS_FILE } from '../store/layout.js';
import { Queue } from '../queue/queue.js';
import { parse, print, printJson, UsageError, type Command } from './common.js';

export const init: Command = {
  name: 'init',
  summary: 'create a queue directory (--mode 0660: shared by a group)',
  help: `Usage: dirq init DIR [--mode MODE] [--json]

Create the queue layout in DIR (dirqueue.json, tmp/, queue/, delayed/,
active/, done/, failed/, workers/, keys/; see FORMAT.md). DIR may be
missing or empty; an existing queue is left as it is. Prints the queue's
absolute path.

A group-shared queue (say a web app's user enqueues and a worker user runs
the jobs, both in one group): --mode 0660 makes every file the library
creates in DIR group-readable and -writable and every directory in it setgid
and group-writable (02770), so files keep the queue's group; DIR itself is
setgid but writable by its owner only (02750), so that no member of the
group can swap one of its directories for a link to a directory elsewhere.
The mode is kept in dirqueue.json for every process that opens the queue;
give the queue its group with chgrp. On an existing queue --mode sets the
modes of the queue and its directories again (its owner or root only); job
files already there keep theirs.

Options:
  --mode MODE  octal file mode of the queue's files, with owner read and
               write: 0660 (group-shared), 0664, 0644
  --json       print {"dir": ..., "mode": "0660" or null}
  --debug      print the stack trace of an error
  -h, --help   show this help

Examples:
  dirq init /var/spool/mail-out
  dirq init /var/spool/mail-out --mode 0660 && chgrp -R mailers /var/spool/mail-out
`,
  async run(args) {
    const parsed = parse(this, args, { json: { type: 'boolean' }, mode: { type: 'string' } }, { min: 1, max: 1 });
    if (parsed === undefined) return 0;
    const { mode } = parsed.values;
    if (mode !== undefined && !/^0?[0-7]{3}$/.test(mode)) {
      throw new UsageError(`--mode must be an octal file mode like 0660 or 0644, got ${JSON.stringify(mode)}`);
    }
    const fileMode = mode === undefined ? undefined : parseMode(mode, '--mode');
    const q = await Queue.open(parsed.positionals[0]!, {
      create: true,
      watch: false,
      maintenance: false,
      ...(fileMode === undefined ? {} : { mode: fileMode }),
    });
    await q.close();
    if (fileMode !== undefined && (fs.statSync(q.dir).mode & 0o022) !== 0) {
      // Queue.open leaves a root only its owner may chmod as it is (with a warning): here that is the whole point
      throw new DirQueueError(
        'EBADMODE',
        `${q.dir} stays writable by others: only its owner or root can make it 0${(modeOfRoot(fileMode) & 0o7777).toString(8)}; run dirq init ${q.dir} --mode ${formatMode(fileMode)} as them`,
      );
    }
    if (parsed.values.json === true)
      printJson({ dir: q.dir, mode: readSettings(path.join(q.dir, SETTINGS_FILE))?.mode ?? null });
    else print(q.dir);
    return 0;
  },
};
