// A no-op batch processor (Pool batchSize > 1), or a no-op job processor when the pool gives one job.
/** @param {unknown} jobs */
export default async function (jobs) {
  return Array.isArray(jobs) ? jobs.map(() => undefined) : undefined;
}
