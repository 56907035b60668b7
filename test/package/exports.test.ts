import { expect } from 'chai';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
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

  it("'heartwire/testing' loads neither node:net nor node:tls (the simulation needs no sockets); FaultProxy is its own entry", () => {
    // Value imports only: a type import loads nothing.
    const loaded = new Set<string>();
    const seen = new Set<string>();
    const pending = ['src/testing/index.ts'];
    while (pending.length > 0) {
      const file = pending.pop()!;
      if (seen.has(file)) continue;
      seen.add(file);
      const source = readFileSync(path.join(ROOT, file), 'utf8');
      for (const match of source.matchAll(
        /(?:^|\n)\s*(import|export)\s+(type\s)?[^'"]*?from\s*'([^']+)'|import\s*'([^']+)'/g,
      )) {
        if (match[2] !== undefined) continue;
        const specifier = (match[3] ?? match[4])!;
        if (specifier.startsWith('.'))
          pending.push(path.join(path.dirname(file), specifier).replace(/\.js$/, '.ts'));
        else loaded.add(specifier);
      }
    }
    expect(seen.has('src/testing/simulation.ts'), 'the walk reaches the simulation').to.equal(true);
    expect(seen.has('src/node/server.ts'), 'the walk reaches Server').to.equal(true);
    expect([...loaded].filter((name) => /^node:(net|tls)$/.test(name))).to.deep.equal([]);
    expect(seen.has('src/testing/fault-proxy.ts')).to.equal(false);
    expect(pkg.exports['./testing/fault-proxy']).to.deep.equal({
      types: './dist/src/testing/fault-proxy.d.ts',
      default: './dist/src/testing/fault-proxy.js',
    });
    expect([...importGraph('src/testing/fault-proxy.ts').packages]).to.not.include('fast-check');
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

  it('tests record figures through report() (test/figures.ts), never by printing them between the dots', () => {
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
        const file = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(file);
        else if (file.endsWith('.ts') && file !== path.join('test', 'figures.ts')) {
          const text = readFileSync(path.join(ROOT, file), 'utf8');
          if (/console\.log\([^)]*\[figures\]/.test(text) || /`\s*\[figures\]/.test(text))
            offenders.push(file);
        }
      }
    };
    walk('test');
    expect(offenders).to.deep.equal([]);
  });
});
