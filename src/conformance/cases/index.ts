/**
 * Every server conformance case, in SPEC.md order.
 * @module
 */
import type { ConformanceCase } from '../types.js';
import { creditCases } from './credit.js';
import { frameCases } from './frames.js';
import { handshakeCases } from './handshake.js';
import { livenessCases } from './liveness.js';
import { terminationCases } from './termination.js';

/** Section number of a case for sorting: `§5.3` → [5, 3]. */
function sectionKey(section: string): number[] {
  return section.replace('§', '').split('.').map(Number);
}

function bySection(a: ConformanceCase, b: ConformanceCase): number {
  const x = sectionKey(a.section);
  const y = sectionKey(b.section);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** The cases of `heartwire conformance server`, sorted by SPEC section (stable within one). */
export const serverCases: ConformanceCase[] = [
  ...handshakeCases,
  ...frameCases,
  ...creditCases,
  ...livenessCases,
  ...terminationCases,
].sort(bySection);
