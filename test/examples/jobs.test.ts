import { expect } from 'chai';
import fc from 'fast-check';
import { Ledger, realNet, startWorker, submitJobs } from '../../examples/jobs/jobs.js';
import { checkJobs, jobProperty } from '../../examples/jobs/property.js';
import { report } from '../figures.js';

/** Runs of the property: HEARTWIRE_PROPERTY_RUNS (npm run test:long: 2000), default 100. */
const numRuns = Number(process.env.HEARTWIRE_PROPERTY_RUNS ?? 100);

describe('examples/jobs: a job queue property-tested on a Simulation of the public API', function () {
  this.timeout(120_000);

  it('never loses or duplicates a job across partitions, one-way loss, crashes, restarts, GOAWAYs and stalls', async () => {
    const started = performance.now();
    await fc.assert(jobProperty(), { numRuns });
    report(
      `examples/jobs: ${numRuns} simulated runs of the job property in ${Math.round(performance.now() - started)} ms`,
    );
  });

  it('the buggy worker (no deduplication) is caught: the failure prints a seed and a shrunk fault schedule that reproduce it', async () => {
    const started = performance.now();
    const result = await fc.check(jobProperty({ dedupe: false }), { numRuns: 500, seed: 20_261_202 });
    expect(result.failed, 'the property catches the buggy worker').to.equal(true);
    const message = fc.defaultReportMessage(result)!;
    expect(message)
      .to.match(/seed: 20261202/)
      .and.match(/Counterexample: \[/)
      .and.match(/Shrunk \d+ time/);
    expect(String(result.errorInstance))
      .to.match(/was done 2 times/)
      .and.match(/reproduce: checkJobs\(\d+, faults\)/);
    // The counterexample reproduces the failure on its own, and the correct worker survives it.
    const [seed, faults] = result.counterexample!;
    expect(faults.length, 'a shrunk schedule is short').to.be.at.most(3);
    const again = await checkJobs(seed, faults, { dedupe: false }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(again?.message).to.match(/was done 2 times/);
    const fixed = await checkJobs(seed, faults);
    expect(fixed.jobs).to.equal(60);
    report(
      `examples/jobs: buggy worker caught after ${result.numRuns} runs, shrunk ${result.numShrinks} times to ${faults.length} fault(s), in ${Math.round(performance.now() - started)} ms`,
    );
  });

  it('a run is reproducible from its seed and schedule', async () => {
    const faults = [
      { atMs: 300, fault: { kind: 'partition' as const, direction: 'both' as const, forMs: 4000 } },
      { atMs: 1500, fault: { kind: 'restart' as const, graceMs: 200 } },
      { atMs: 2500, fault: { kind: 'crash' as const, mode: 'reset' as const, downMs: 1000 } },
    ];
    const a = await checkJobs(11, faults);
    expect(await checkJobs(11, faults)).to.deep.equal(a);
    expect(a.connections).to.be.greaterThan(3);
  });

  it('the same code runs on the real network', async () => {
    const ledger = new Ledger();
    const worker = await startWorker(realNet, ledger, { port: 0 });
    const { port } = worker.server.address()!;
    const jobs = Array.from({ length: 20 }, (_, i) => `job-${i}`);
    await submitJobs(realNet, jobs, { port });
    await worker.server.close();
    expect([...ledger.done.entries()]).to.deep.equal(jobs.map((id) => [id, 1]));
  });
});
