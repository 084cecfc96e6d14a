// A no-op processor that returns when it started, on the clock the bench uses.
export default async function () {
  return performance.timeOrigin + performance.now();
}
