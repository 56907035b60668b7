/**
 * The job queue example, start to end:
 *
 * ```sh
 * npx tsx examples/jobs/main.ts            # the app on real TCP, then the property on a Simulation
 * npx tsx examples/jobs/main.ts --buggy    # the same property against the worker that forgets to dedupe
 * ```
 *
 * First the worker and a submitter run over loopback TCP (20 jobs). Then the same code runs on
 * heartwire's `Simulation` under 100 random fault schedules (partitions, one-way loss, path
 * changes, crashes, restarts with GOAWAY, a stalled worker), each a few seconds of virtual time:
 * every job must be done exactly once. With `--buggy` the property fails, and fast-check prints
 * the seed and the shrunk fault schedule that reproduce the failure.
 * @module
 */
import fc from 'fast-check';
import { Ledger, realNet, startWorker, submitJobs } from './jobs.js';
import { jobProperty } from './property.js';

const buggy = process.argv.includes('--buggy');

if (!buggy) {
  const ledger = new Ledger();
  const worker = await startWorker(realNet, ledger, { port: 0 });
  const { port } = worker.server.address()!;
  await submitJobs(
    realNet,
    Array.from({ length: 20 }, (_, i) => `job-${i}`),
    { port },
  );
  await worker.server.close();
  console.log(
    `real TCP: ${ledger.done.size} jobs done, each once: ${[...ledger.done.values()].every((n) => n === 1)}`,
  );
}

const started = performance.now();
const result = await fc.check(jobProperty({ dedupe: !buggy }), { numRuns: buggy ? 300 : 100 });
const ms = Math.round(performance.now() - started);
if (result.failed) {
  console.log(`the property failed (${ms} ms):\n${fc.defaultReportMessage(result)}`);
  console.log(`\n${(result.errorInstance as Error).message}`);
  process.exitCode = buggy ? 0 : 1;
} else {
  console.log(`simulation: ${result.numRuns} fault schedules, no job lost or done twice (${ms} ms)`);
  process.exitCode = buggy ? 1 : 0;
}
