/**
 * The job queue's property, on a simulated network: whatever the faults, every job submitted is
 * done exactly once and acknowledged. One run is {@link checkJobs}; {@link jobProperty} is the
 * fast-check property over seeds and fault schedules (partitions, one-way loss, path changes,
 * crashes, graceful restarts with GOAWAY, a stalled worker), shrunk to a minimal schedule on
 * failure. Used by `main.ts` and `test/examples/jobs.test.ts`.
 * @module
 */
import fc from 'fast-check';
import {
  Simulation,
  arbitrarySimFaults,
  describeSimFaults,
  scheduleSimFaults,
} from '../../src/testing/index.js';
import type { TimedSimFault } from '../../src/testing/index.js';
import { Ledger, startWorker, submitJobs } from './jobs.js';
import type { Worker } from './jobs.js';

const PORT = 7000;
/** Submitters, batches each, jobs per batch, ms between batches: about 4 s of virtual time without faults. */
const SUBMITTERS = 3;
const BATCHES = 4;
const BATCH = 5;
const PACE_MS = 1000;

/** Options of a run. */
export interface JobRunOptions {
  /** false runs the buggy worker (no deduplication). */
  dedupe?: boolean;
}

/** What a run did, for the curious. */
export interface JobRunReport {
  jobs: number;
  connections: number;
  virtualMs: number;
}

/**
 * One run: a worker, {@link SUBMITTERS} submitters, `faults`. Throws (with the seed and the
 * schedule) if a job was lost, done twice, or the run did not finish.
 */
export async function checkJobs(
  seed: number,
  faults: readonly TimedSimFault[],
  options: JobRunOptions = {},
): Promise<JobRunReport> {
  const sim = new Simulation({ seed, timeLimit: 15 * 60_000 });
  const ledger = new Ledger();
  const jobs: string[] = [];
  let connections = 0;
  try {
    await sim.run(async () => {
      const start = (): Promise<Worker> =>
        startWorker(sim, ledger, { port: PORT, dedupe: options.dedupe, server: { idleTimeout: 3000 } });
      let worker: Worker | undefined = await start();
      scheduleSimFaults(sim, faults, {
        crash: async ({ mode, downMs }) => {
          if (worker === undefined) return; // already down
          sim.crash(worker.server, mode);
          worker = undefined;
          await sim.sleep(downMs);
          worker = await start();
        },
        restart: async ({ graceMs }) => {
          if (worker === undefined) return;
          const old = worker;
          worker = undefined;
          void old.server.close({ grace: graceMs }); // GOAWAY; drains while the new one starts
          worker = await start();
        },
        stall: ({ forMs }) => worker?.pause(forMs),
      });
      const submitter = async (s: number): Promise<void> => {
        for (let b = 0; b < BATCHES; b++) {
          const batch = Array.from({ length: BATCH }, (_, i) => `job-${s}-${b}-${i}`);
          jobs.push(...batch);
          await submitJobs(sim, batch, {
            port: PORT,
            client: { idleTimeout: 3000, connectTimeout: 2000, minDelay: 100, maxDelay: 1000 },
            onConnection: () => connections++,
          });
          await sim.sleep(PACE_MS);
        }
      };
      await Promise.all(Array.from({ length: SUBMITTERS }, (_, s) => submitter(s)));
      // Every job acknowledged: each must have been done exactly once.
      for (const id of jobs) {
        const times = ledger.done.get(id) ?? 0;
        if (times !== 1) throw new Error(`job ${id} was done ${times} times`);
      }
      if (ledger.done.size !== jobs.length) throw new Error('the ledger holds jobs nobody submitted');
    });
  } catch (error) {
    throw new Error(
      `${(error as Error).message}\nreproduce: checkJobs(${seed}, faults) with faults:\n${describeSimFaults(faults)}\ntrace:\n${sim.formatTrace(20)}`,
      { cause: error },
    );
  }
  return { jobs: jobs.length, connections, virtualMs: sim.now };
}

/** The arbitrary of fault schedules the property uses. */
export const jobFaults = arbitrarySimFaults({ maxFaults: 6, horizonMs: 5000, maxDurationMs: 5000 });

/** The property: for every seed and fault schedule, no job is lost or done twice. */
export function jobProperty(options: JobRunOptions = {}) {
  return fc.asyncProperty(fc.integer({ min: 0, max: 2 ** 31 - 1 }), jobFaults, async (seed, faults) => {
    await checkJobs(seed, faults, options);
  });
}
