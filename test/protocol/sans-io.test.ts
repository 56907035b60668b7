import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('../../src/protocol/', import.meta.url).pathname;

/** The protocol core must stay pure: no I/O modules, no clock, no timers, no Node globals. */
describe('src/protocol is sans-IO', () => {
  const files = readdirSync(root).filter((f) => f.endsWith('.ts'));

  it('has source files to check', () => {
    expect(files).to.include('engine.ts');
    expect(files.length).to.be.greaterThan(5);
  });

  for (const file of files) {
    it(`${file} imports no node: module and uses no clock or timer`, () => {
      const source = readFileSync(join(root, file), 'utf8')
        .replace(/\/\*[\s\S]*?\*\//g, '')
        .replace(/\/\/.*$/gm, '');
      const imports = [...source.matchAll(/from\s+['"]([^'"]+)['"]/g)].map((m) => m[1]!);
      for (const spec of imports) {
        expect(spec.startsWith('.') || spec.startsWith('protobufjs'), `${file} imports ${spec}`).to.equal(
          true,
        );
      }
      for (const banned of [
        /\bDate\.now\b/,
        /\bnew Date\b/,
        /\bperformance\./,
        /\bsetTimeout\b/,
        /\bsetInterval\b/,
        /\bsetImmediate\b/,
        /\bprocess\./,
        /\bBuffer\./,
        /\brequire\(/,
      ]) {
        expect(banned.test(source), `${file} uses ${banned}`).to.equal(false);
      }
    });
  }
});
