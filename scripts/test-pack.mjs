#!/usr/bin/env node
/**
 * `npm run test:pack`: checks that heartwire installs like an npm package. Not part of `npm test`:
 * it installs from the registry (npm's cache first) and takes a few minutes.
 *
 * 1. Clones the repository's committed HEAD into a temporary directory, runs `npm ci` there
 *    (whose `prepare` builds `dist/`) and `npm pack`.
 * 2. Installs the tarball into an empty project and checks, without fast-check installed:
 *    `import 'heartwire'` (a real round trip over loopback), `require('heartwire')` from
 *    CommonJS (require(esm), Node >= 20.19), `heartwire/wire`, that `heartwire/testing` fails
 *    only for want of fast-check, that fast-check is not installed, a TypeScript consumer
 *    with `moduleResolution` node16 (ESM) and node10 (CommonJS, compiled and run), and that
 *    every source map reference resolves (the build ships none today).
 * 3. Installs fast-check and checks `import 'heartwire/testing'` (and its types, node16 and
 *    node10).
 * 4. Unless `--skip-git`: `npm install git+file://<repo>` into another empty project (npm runs
 *    `prepare` in its own clone) and imports it.
 *
 * Prints the tarball's size and the consumer's node_modules size without and with fast-check.
 * `--keep` keeps the temporary directory. Exit status 0 when every check passed.
 */
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import process from 'node:process';
import path from 'node:path';
import { fileURLToPath, URL } from 'node:url';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const keep = args.includes('--keep');
const skipGit = args.includes('--skip-git');
const NPM_FLAGS = ['--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'];

const tmp = mkdtempSync(path.join(os.tmpdir(), 'heartwire-pack-'));
const failures = [];
const log = (line) => process.stdout.write(`${line}\n`);

function run(command, argv, cwd, options = {}) {
  try {
    return execFileSync(command, argv, {
      cwd,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 64 * 1024 * 1024,
      ...options,
    });
  } catch (error) {
    const output = `${error.stdout ?? ''}${error.stderr ?? ''}`.trim();
    throw new Error(`${command} ${argv.join(' ')} (in ${cwd}) failed:\n${output}`, { cause: error });
  }
}
const npm = (argv, cwd) => run(process.platform === 'win32' ? 'npm.cmd' : 'npm', argv, cwd);
const node = (argv, cwd) => run(process.execPath, argv, cwd);

function check(name, fn) {
  try {
    const detail = fn();
    log(`ok    ${name}${detail ? `: ${detail}` : ''}`);
  } catch (error) {
    failures.push(name);
    log(`FAIL  ${name}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** Bytes of the files under `dir` (apparent sizes). */
function sizeOf(dir) {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) total += sizeOf(file);
    else if (entry.isFile()) total += statSync(file).size;
  }
  return total;
}
const mb = (bytes) => `${(bytes / 1e6).toFixed(2)} MB`;
const kb = (bytes) => `${(bytes / 1e3).toFixed(1)} kB`;

/** An empty project in `dir` (a package.json of `type`). */
function project(dir, type) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    path.join(dir, 'package.json'),
    `${JSON.stringify({ name: path.basename(dir), version: '1.0.0', private: true, type }, null, 2)}\n`,
  );
  return dir;
}

// A round trip through the installed package: server, client, send, for await, end, close.
const ROUND_TRIP = `
const server = hw.createServer({ idleTimeout: 5000 }, async (conn) => {
  for await (const msg of conn) await conn.send(msg);
});
const { port } = await server.listen(0, '127.0.0.1');
const conn = await hw.connect({ host: '127.0.0.1', port, idleTimeout: 5000 });
await conn.send(new TextEncoder().encode('ping'));
let echoed = '';
for await (const msg of conn) { echoed = new TextDecoder().decode(msg); break; }
const info = await conn.end();
await server.close({ grace: 1000 });
if (echoed !== 'ping' || !info.clean) throw new Error('round trip failed: ' + echoed + ' ' + JSON.stringify(info));
`;

try {
  log(`heartwire test:pack in ${tmp}`);
  const head = run('git', ['rev-parse', '--short', 'HEAD'], REPO).trim();
  const dirty = run('git', ['status', '--porcelain', '--untracked-files=no'], REPO).trim() !== '';
  log(`clone of ${REPO} at ${head}${dirty ? ' (uncommitted changes are not part of the check)' : ''}`);

  // 1. Fresh clone, npm ci (prepare builds), npm pack.
  const clone = path.join(tmp, 'clone');
  run('git', ['clone', '--quiet', REPO, clone], tmp);
  npm(['ci', ...NPM_FLAGS], clone);
  check('npm ci in a fresh clone builds dist/ (prepare)', () => {
    if (!existsSync(path.join(clone, 'dist', 'src', 'index.js'))) throw new Error('no dist/src/index.js');
  });
  const [packed] = JSON.parse(npm(['pack', '--json', '--pack-destination', tmp, '--loglevel=error'], clone));
  const tarball = path.join(tmp, packed.filename);
  log(
    `      tarball ${packed.filename}: ${kb(packed.size)} packed, ${kb(packed.unpackedSize)} unpacked, ${packed.entryCount} files`,
  );
  const typescript = path.join(clone, 'node_modules', 'typescript', 'bin', 'tsc');
  const typeRoots = path.join(clone, 'node_modules', '@types');

  // 2. Install into an empty project, without fast-check.
  const consumer = project(path.join(tmp, 'consumer'), 'module');
  npm(['install', ...NPM_FLAGS, tarball], consumer);
  const modules = path.join(consumer, 'node_modules');
  const withoutFastCheck = sizeOf(modules);
  check('fast-check is not installed with heartwire', () => {
    for (const name of ['fast-check', 'pure-rand']) {
      if (existsSync(path.join(modules, name))) throw new Error(`node_modules/${name} exists`);
    }
    return `node_modules ${mb(withoutFastCheck)}: ${readdirSync(modules)
      .filter((n) => !n.startsWith('.'))
      .join(', ')}`;
  });
  writeFileSync(
    path.join(consumer, 'esm.mjs'),
    `import * as hw from 'heartwire';\n${ROUND_TRIP}\nconsole.log(Object.keys(hw).length);\n`,
  );
  check(
    "import 'heartwire' (ESM): a round trip over loopback",
    () => `${node(['esm.mjs'], consumer).trim()} exports`,
  );
  writeFileSync(
    path.join(consumer, 'cjs.cjs'),
    `const hw = require('heartwire');\nconst wire = require('heartwire/wire');\n(async () => {${ROUND_TRIP}\nconsole.log(wire.FrameType.HEARTBEAT);\n})().catch((e) => { console.error(e); process.exit(1); });\n`,
  );
  check(`require('heartwire') (CommonJS, Node ${process.version}): a round trip`, () => {
    const [major, minor] = process.versions.node.split('.').map(Number);
    if (major === 20 && minor < 19) return 'skipped: require(esm) needs Node >= 20.19';
    node(['cjs.cjs'], consumer);
    return undefined;
  });
  check("import 'heartwire/wire'", () => {
    const out = node(
      [
        '--input-type=module',
        '-e',
        "import { FrameType, FrameDecoder } from 'heartwire/wire'; console.log(FrameType.HEARTBEAT, typeof FrameDecoder);",
      ],
      consumer,
    );
    return out.trim();
  });
  check("import 'heartwire/testing' without fast-check fails for want of fast-check only", () => {
    try {
      node(['--input-type=module', '-e', "await import('heartwire/testing');"], consumer);
    } catch (error) {
      if (/Cannot find (package|module) 'fast-check'/.test(error.message))
        return 'ERR_MODULE_NOT_FOUND fast-check';
      throw error;
    }
    throw new Error('it loaded');
  });
  check("import 'heartwire/testing/fault-proxy' (no fast-check needed)", () => {
    const out = node(
      [
        '--input-type=module',
        '-e',
        "import { FaultProxy } from 'heartwire/testing/fault-proxy'; console.log(typeof FaultProxy);",
      ],
      consumer,
    );
    return out.trim();
  });
  check('the heartwire command runs from the package (npx heartwire --help)', () => {
    const out = npm(['exec', '--no', '--', 'heartwire', '--help'], consumer);
    if (!/usage: heartwire/.test(out)) throw new Error(`unexpected output: ${out.slice(0, 200)}`);
    return undefined;
  });
  check('source maps: every sourceMappingURL and every map source in the package resolves', () => {
    const root = path.join(modules, 'heartwire');
    let maps = 0;
    let scripts = 0;
    const walk = (dir) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const file = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(file);
        else if (/\.(js|d\.ts)$/.test(entry.name)) {
          scripts++;
          const url = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(readFileSync(file, 'utf8'))?.[1];
          if (url !== undefined && !existsSync(path.resolve(path.dirname(file), url))) {
            throw new Error(`${path.relative(root, file)} -> ${url}: missing`);
          }
        } else if (entry.name.endsWith('.map')) {
          maps++;
          const map = JSON.parse(readFileSync(file, 'utf8'));
          for (const source of map.sources) {
            const target = path.resolve(path.dirname(file), map.sourceRoot ?? '', source);
            if (!existsSync(target)) throw new Error(`${path.relative(root, file)} -> ${source}: missing`);
          }
        }
      }
    };
    walk(path.join(root, 'dist'));
    return `${scripts} .js/.d.ts files, ${maps} maps`;
  });

  // TypeScript consumers: node16 (ESM) and node10 (CommonJS, compiled and run).
  const tsc = (dir, options, files) => {
    writeFileSync(
      path.join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          strict: true,
          skipLibCheck: false,
          typeRoots: [typeRoots],
          types: ['node'],
          outDir: 'out',
          ...options,
        },
        files,
      }),
    );
    return node([typescript, '-p', dir], dir);
  };
  const tsMain = `import { connect, createServer, HeartwireError, GoAwayReason } from 'heartwire';
import type { CloseInfo, Connection, ConnectionEvents, DeliveryReport } from 'heartwire';
import { FrameType, FLAG_ECHO } from 'heartwire/wire';
const use = (info: CloseInfo, report: DeliveryReport): number => info.delivery.queued + report.consumed;
export const names = [typeof connect, typeof createServer, typeof HeartwireError, GoAwayReason, FrameType.DATA, FLAG_ECHO, use];
export type T = [Connection, ConnectionEvents];
`;
  const tsTesting = `import { VirtualClock, arbitraryFrame, Simulation, arbitrarySimFaults } from 'heartwire/testing';
import type { SimulationOptions, TimedSimFault } from 'heartwire/testing';
import { FaultProxy } from 'heartwire/testing/fault-proxy';
import type { Connection } from 'heartwire';
const options: SimulationOptions = { seed: 1 };
const sim = new Simulation(options);
export const pending: Promise<Connection> = sim.connect({ port: 7000 });
export const kit = [new VirtualClock(), arbitraryFrame, arbitrarySimFaults, FaultProxy] as const;
export type T = TimedSimFault;
`;
  const esmTs = project(path.join(consumer, 'ts-node16'), 'module');
  writeFileSync(path.join(esmTs, 'main.ts'), tsMain);
  const cjsTs = project(path.join(consumer, 'ts-node10'), 'commonjs');
  writeFileSync(
    path.join(cjsTs, 'main.ts'),
    `${tsMain}\n(async () => {const hw = { connect, createServer };${ROUND_TRIP}})().catch((e) => { console.error(e); process.exit(1); });\n`,
  );
  check('TypeScript consumer, module/moduleResolution node16 (ESM), without fast-check', () => {
    tsc(esmTs, { module: 'node16', moduleResolution: 'node16' }, ['main.ts']);
  });
  check(
    'TypeScript consumer, moduleResolution node10 (CommonJS), without fast-check: compiles and runs',
    () => {
      tsc(cjsTs, { module: 'commonjs', moduleResolution: 'node10' }, ['main.ts']);
      node([path.join('out', 'main.js')], cjsTs);
    },
  );

  // 3. With fast-check installed by the user.
  npm(['install', ...NPM_FLAGS, 'fast-check'], consumer);
  const withFastCheck = sizeOf(modules);
  check(
    "heartwire/testing's Simulation runs the package's own Connection and Server (echo on virtual time)",
    () => {
      const out = node(
        [
          '--input-type=module',
          '-e',
          "import { Simulation } from 'heartwire/testing'; const sim = new Simulation({ seed: 1 }); const reply = await sim.run(async () => { const server = sim.createServer({}, (c) => c.handle(async (m) => void (await c.send(m)))); await server.listen(7000); const conn = await sim.connect({ port: 7000 }); await conn.send('hi'); let r; for await (const m of conn) { r = new TextDecoder().decode(m); await conn.end(); } await server.close(); return r; }); if (reply !== 'hi') throw new Error(reply); console.log(reply, sim.now > 0);",
        ],
        consumer,
      );
      return out.trim();
    },
  );
  check("import 'heartwire/testing' once fast-check is installed", () => {
    const out = node(
      [
        '--input-type=module',
        '-e',
        "import fc from 'fast-check'; import { VirtualClock, arbitraryFrame } from 'heartwire/testing'; const c = new VirtualClock(); console.log(typeof c.now, fc.sample(arbitraryFrame(), 3).length);",
      ],
      consumer,
    );
    return out.trim();
  });
  for (const [name, dir, options] of [
    ['node16', esmTs, { module: 'node16', moduleResolution: 'node16' }],
    ['node10', cjsTs, { module: 'commonjs', moduleResolution: 'node10' }],
  ]) {
    writeFileSync(path.join(dir, 'testing.ts'), tsTesting);
    // fast-check's own declarations import pure-rand subpaths that node10 resolution cannot see:
    // a node10 consumer of fast-check needs skipLibCheck whatever heartwire does.
    const skipLibCheck = name === 'node10';
    check(
      `TypeScript consumer of heartwire/testing, moduleResolution ${name}${skipLibCheck ? ' (skipLibCheck, for fast-check)' : ''}`,
      () => {
        tsc(dir, { ...options, skipLibCheck }, ['main.ts', 'testing.ts']);
      },
    );
  }

  // 4. git install (npm clones, installs devDependencies, runs prepare, packs).
  if (!skipGit) {
    const gitConsumer = project(path.join(tmp, 'git-consumer'), 'module');
    check('npm install git+file://<repo> builds and imports', () => {
      npm(['install', ...NPM_FLAGS, `git+file://${clone}`], gitConsumer);
      writeFileSync(path.join(gitConsumer, 'esm.mjs'), `import * as hw from 'heartwire';\n${ROUND_TRIP}\n`);
      node(['esm.mjs'], gitConsumer);
    });
  }

  log(
    `\nsizes: tarball ${kb(packed.size)} (${kb(packed.unpackedSize)} unpacked); consumer node_modules ${mb(withoutFastCheck)} without fast-check, ${mb(withFastCheck)} with it`,
  );
} catch (error) {
  failures.push('setup');
  log(`FAIL  ${error instanceof Error ? error.message : String(error)}`);
} finally {
  if (keep) log(`kept ${tmp}`);
  else rmSync(tmp, { recursive: true, force: true });
}
log(
  failures.length === 0
    ? 'test:pack: all checks passed'
    : `test:pack: ${failures.length} failed: ${failures.join('; ')}`,
);
process.exit(failures.length === 0 ? 0 : 1);
