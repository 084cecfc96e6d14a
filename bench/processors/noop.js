// A no-op processor module: returns null. bench/bullmq.js runs it in worker threads on both sides
// (a dirqueue Pool with `threads`, a BullMQ sandboxed Worker with `useWorkerThreads`).
export default async function () {
  return null;
}
