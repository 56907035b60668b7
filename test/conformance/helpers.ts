/**
 * Shared by the conformance runner's tests (server and client side): reading a run's results,
 * and the "broken peer" variants (a correct peer behind a MutatingProxy that breaks one rule).
 */
import { expect } from 'chai';
import { failingSections, humanReport } from '../../src/conformance/report.js';
import type { RunResult } from '../../src/conformance/types.js';
import type { Mutator } from './mutating-proxy.js';

/** The failed cases of a run, each as `id [sections]`. */
export function failures(run: RunResult): string[] {
  return run.results
    .filter((r) => r.status === 'fail')
    .map((r) => `${r.id} [${failingSections(r).join(',')}]`);
}

/** The run's human-readable report (assertion messages). */
export function explain(run: RunResult): string {
  return humanReport(run).join('\n');
}

/** A peer made broken by `mutator`: the cases in `only` run, and each of `caught` must fail. */
export interface BrokenVariant {
  name: string;
  only: string[];
  mutator: Mutator;
  caught: { id: string; section: string }[];
}

/** The test title of a variant: `a <peer> that <name> fails <id> (<section>), …`. */
export function variantTitle(peer: 'client' | 'server', variant: BrokenVariant): string {
  return `a ${peer} that ${variant.name} fails ${variant.caught.map((c) => `${c.id} (${c.section})`).join(', ')}`;
}

/** Each case of `caught` ran in `run`, failed, and names its section among the failing ones. */
export function expectCaught(run: RunResult, caught: BrokenVariant['caught']): void {
  for (const { id, section } of caught) {
    const result = run.results.find((r) => r.id === id);
    expect(result, `${id} ran`).to.not.equal(undefined);
    expect(result!.status, explain(run)).to.equal('fail');
    expect(failingSections(result!), explain(run)).to.include(section);
  }
}
