// A processor that sleeps for job.data ms, so jobs wait while every worker is busy.
/** @param {{ data: number }} job */
export default async function (job) {
  await new Promise((resolve) => setTimeout(resolve, job.data));
  return null;
}
