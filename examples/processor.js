/**
 * An example processor for `dirq work`: the module's default export is an
 * async function that takes a job ({ id, type, data, attempt, ... }) and
 * returns its result, which is kept with the job in done/. A throw fails the
 * attempt: the job is retried after a backoff, and goes to failed/ with the
 * error once its attempts are used up.
 *
 *   dirq work /var/spool/files ./examples/processor.js --threads 4
 *   dirq enqueue /var/spool/files checksum '{"path":"/etc/hostname"}'
 *   dirq wait /var/spool/files 50-...checksum   # {"path": ..., "bytes": ..., "sha256": ...}
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

/** One handler per job type. */
const handlers = {
  /** {"path": FILE} -> the file's size and SHA-256. */
  async checksum(data, job) {
    if (typeof data?.path !== 'string') throw invalid(`checksum needs {"path": "..."}, got ${JSON.stringify(data)}`);
    const hash = createHash('sha256');
    let bytes = 0;
    // job.signal aborts when the job times out or the pool shuts down
    for await (const chunk of createReadStream(data.path, { signal: job.signal })) {
      hash.update(chunk);
      bytes += chunk.length;
    }
    return { path: data.path, bytes, sha256: hash.digest('hex') };
  },

  /** Anything -> the same data, and which attempt ran it. */
  async echo(data, job) {
    return { data, attempt: job.attempt };
  },
};

export default async function process(job) {
  const handler = handlers[job.type];
  if (handler === undefined)
    throw invalid(
      `no handler for job type ${JSON.stringify(job.type)}: use one of ${Object.keys(handlers).join(', ')}`,
    );
  return handler(job.data, job);
}

/** An error with a code, recorded with the job (see dirq show). */
function invalid(message) {
  return Object.assign(new Error(message), { code: 'EINVALIDJOB' });
}
