import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as constants from '../../src/protocol/constants.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
  peerDependenciesMeta: Record<string, { optional?: boolean }>;
  devDependencies: Record<string, string>;
  exports: Record<string, string | { types: string; default: string }>;
  typesVersions: Record<string, Record<string, string[]>>;
  files: string[];
  sideEffects: boolean;
  scripts: Record<string, string>;
};

/** Every module `entry` reaches through its imports (value and type imports), as repository paths. */
function importGraph(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const pending = [entry];
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    const source = readFileSync(path.join(ROOT, file), 'utf8');
    for (const match of source.matchAll(
      /(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*'([^']+)'|import\s*'([^']+)'/g,
    )) {
      const specifier = (match[1] ?? match[2])!;
      if (specifier.startsWith('.')) {
        pending.push(path.join(path.dirname(file), specifier).replace(/\.js$/, '.ts'));
      } else {
        packages.add(
          specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]!,
        );
      }
    }
  }
  return { files, packages };
}

/** The source file of a built path: `./dist/src/x.js` or `.d.ts` → `src/x.ts`. */
const sourceOf = (built: string): string =>
  built.replace(/^\.\/dist\//, '').replace(/(\.d)?\.ts$|\.js$/, '.ts');

describe('package: entry points and manifest', () => {
  it("'heartwire' and 'heartwire/wire' reach nothing of heartwire/testing or fast-check", () => {
    for (const entry of ['src/index.ts', 'src/wire.ts']) {
      const { files, packages } = importGraph(entry);
      expect(
        [...files].filter((f) => f.startsWith('src/testing/')),
        entry,
      ).to.deep.equal([]);
      expect([...packages].sort(), entry).to.not.include('fast-check');
      for (const name of packages) {
        if (name.startsWith('node:')) continue;
        expect(pkg.dependencies, `${entry} imports ${name}`).to.have.property(name);
      }
    }
    // The walk does see fast-check where it is: the test kit.
    expect([...importGraph('src/testing/index.ts').packages]).to.include('fast-check');
  });

  it('the main entry exports the API, not the wire constants (those are in heartwire/wire)', async () => {
    const main = await import('../../src/index.js');
    const wire = await import('../../src/wire.js');
    for (const name of Object.keys(constants)) {
      expect(main, `heartwire exports ${name}`).to.not.have.property(name);
      expect(wire, `heartwire/wire lacks ${name}`).to.have.property(name);
    }
    for (const name of ['FrameDecoder', 'encodeFrame', 'decodeAll']) {
      expect(main).to.not.have.property(name);
      expect(wire).to.have.property(name);
    }
    for (const name of [
      'connect',
      'createServer',
      'Connection',
      'Server',
      'ReconnectingClient',
      'HeartwireError',
    ]) {
      expect(main).to.have.property(name);
    }
  });

  it('fast-check is an optional peer dependency (and a devDependency), never a dependency', () => {
    expect(pkg.dependencies).to.not.have.property('fast-check');
    expect(pkg.peerDependencies).to.have.property('fast-check');
    expect(pkg.peerDependenciesMeta['fast-check']?.optional).to.equal(true);
    expect(pkg.devDependencies['fast-check']).to.equal(pkg.peerDependencies['fast-check']);
  });

  it('every subpath export exists in the sources, and typesVersions maps it for node10 resolution', () => {
    for (const [subpath, target] of Object.entries(pkg.exports)) {
      if (typeof target === 'string') continue;
      for (const built of [target.types, target.default]) {
        expect(existsSync(path.join(ROOT, sourceOf(built))), `${subpath}: ${built}`).to.equal(true);
      }
      if (subpath === '.') continue;
      expect(pkg.typesVersions['*']?.[subpath.slice(2)], `typesVersions for ${subpath}`).to.deep.equal([
        target.types,
      ]);
    }
  });

  it('ships no source map that points at a source it does not ship, builds on prepare, has no side effects', () => {
    // Either the build emits no maps (the choice today: the package stays small, and tsc's
    // ES2022 output reads like the source), or the sources ship with them.
    const build = JSON.parse(readFileSync(path.join(ROOT, 'tsconfig.build.json'), 'utf8')) as {
      compilerOptions: { sourceMap?: boolean; declarationMap?: boolean };
    };
    const emitsMaps =
      build.compilerOptions.sourceMap !== false || build.compilerOptions.declarationMap === true;
    if (emitsMaps) expect(pkg.files).to.include('src');
    expect(pkg.scripts.prepare).to.equal('npm run build');
    expect(pkg.sideEffects).to.equal(false);
    expect(existsSync(path.join(ROOT, 'LICENSE'))).to.equal(true);
  });
});
