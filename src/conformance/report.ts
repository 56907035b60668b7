/**
 * Reports of a conformance run: human-readable lines, JSON, JUnit XML.
 * @module
 */
import type { CaseResult, RunResult } from './types.js';

const label = { pass: 'PASS', fail: 'FAIL', info: 'INFO' } as const;

/** One line per case as it finishes. */
export function resultLine(r: CaseResult): string {
  return `${label[r.status]}  ${r.section.padEnd(6)} ${r.id}  (${r.durationMs} ms)`;
}

/** Details of a failed or informational case, indented. */
export function resultDetail(r: CaseResult): string[] {
  if (r.status === 'pass') return [];
  const lines = [`      ${r.title}`, `      expected: ${r.expected}`, `      seen:     ${r.seen}`];
  for (const v of r.violations) lines.push(`      violation ${v.section} at ${v.at} ms: ${v.message}`);
  for (const n of r.notes) lines.push(`      note: ${n}`);
  return lines;
}

/** The human-readable report: every case (in SPEC order), failures in detail, a summary. */
export function humanReport(run: RunResult): string[] {
  const lines = [`heartwire conformance ${run.mode} ${run.target}: ${run.results.length} cases`];
  for (const r of run.results) lines.push(resultLine(r), ...resultDetail(r));
  lines.push(summaryLine(run));
  return lines;
}

/** `71 pass, 1 fail, 2 info in 12.3 s; failing sections: §7, §8`. */
export function summaryLine(run: RunResult): string {
  const failing = [...new Set(run.results.filter((r) => r.status === 'fail').flatMap(failingSections))];
  const tail = failing.length > 0 ? `; failing sections: ${failing.join(', ')}` : '';
  return `${run.counts.pass} pass, ${run.counts.fail} fail, ${run.counts.info} info in ${(run.durationMs / 1000).toFixed(1)} s${tail}`;
}

/** The SPEC sections a failed case names: its own, and those of the violations seen. */
export function failingSections(r: CaseResult): string[] {
  if (r.status !== 'fail') return [];
  const own = r.violations.length > 0 && r.seen.includes('SPEC violation') ? [] : [r.section];
  return [...new Set([...own, ...r.violations.map((v) => v.section)])];
}

/** The JSON report. */
export function jsonReport(run: RunResult): string {
  return JSON.stringify(
    { ...run, results: run.results.map((r) => ({ ...r, failingSections: failingSections(r) })) },
    null,
    2,
  );
}

function xml(text: string): string {
  return (
    text
      .replace(/&/g, '&amp;')
      .replace(/</g, '&lt;')
      .replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;')
      // eslint-disable-next-line no-control-regex
      .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, '')
  );
}

/** JUnit XML: one testsuite per SPEC section, one testcase per case; `info` cases are skipped. */
export function junitReport(run: RunResult): string {
  const sections = new Map<string, CaseResult[]>();
  for (const r of run.results) sections.set(r.section, [...(sections.get(r.section) ?? []), r]);
  const out = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="heartwire conformance ${run.mode} ${xml(run.target)}" tests="${run.results.length}" failures="${run.counts.fail}" skipped="${run.counts.info}" time="${(run.durationMs / 1000).toFixed(3)}">`,
  ];
  for (const [section, results] of sections) {
    const failures = results.filter((r) => r.status === 'fail').length;
    const skipped = results.filter((r) => r.status === 'info').length;
    const time = results.reduce((sum, r) => sum + r.durationMs, 0) / 1000;
    out.push(
      `  <testsuite name="SPEC ${xml(section)}" tests="${results.length}" failures="${failures}" skipped="${skipped}" time="${time.toFixed(3)}">`,
    );
    for (const r of results) {
      out.push(
        `    <testcase classname="SPEC ${xml(section)}" name="${xml(r.id)}: ${xml(r.title)}" time="${(r.durationMs / 1000).toFixed(3)}">`,
      );
      const detail = [
        `expected: ${r.expected}`,
        `seen: ${r.seen}`,
        ...r.violations.map((v) => `violation ${v.section}: ${v.message}`),
      ].join('\n');
      if (r.status === 'fail')
        out.push(
          `      <failure message="${xml(`${failingSections(r).join(', ')}: ${r.seen}`)}">${xml(detail)}</failure>`,
        );
      else if (r.status === 'info') out.push(`      <skipped message="${xml(r.seen)}"/>`);
      out.push('    </testcase>');
    }
    out.push('  </testsuite>');
  }
  out.push('</testsuites>');
  return out.join('\n');
}
