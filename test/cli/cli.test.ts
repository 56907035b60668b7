import { expect } from 'chai';
import { createServer } from '../../src/node/server.js';
import { report } from '../figures.js';
import { startCli } from '../helpers/child.js';
import type { OutputChild } from '../helpers/child.js';

async function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const cli = startCli(args);
  const code = await cli.closed; // exited, and its output all read
  return { code, stdout: cli.stdout, stderr: cli.stderr };
}

describe('heartwire command', function () {
  this.timeout(60_000); // each command start compiles the sources with tsx: seconds on a loaded machine
  const running: OutputChild[] = [];
  afterEach(() => {
    for (const cli of running.splice(0)) if (cli.child.exitCode === null) cli.child.kill('SIGKILL');
  });

  it('--help lists the commands and exits 0; each command has its own --help', async () => {
    const top = await run(['--help']);
    expect(top.code).to.equal(0);
    for (const command of ['serve', 'ping', 'demo', 'conformance']) expect(top.stdout).to.contain(command);
    // Both conformance modes the README describes.
    expect(top.stdout).to.contain('conformance server').and.contain('conformance client');
    // The benchmark is `npm run bench` (a tool of the repository), not a command of the package.
    expect(top.stdout).not.to.contain('bench');
    const commands = ['serve', 'ping', 'demo', 'conformance'];
    const results = await Promise.all(commands.map((command) => run([command, '--help'])));
    for (const [i, command] of commands.entries()) {
      expect(results[i]!.code, command).to.equal(0);
      expect(results[i]!.stdout).to.match(new RegExp(`^usage: heartwire ${command}`));
    }
  });

  it('exits 2 with one line on stderr on bad usage, 1 on failure', async () => {
    const [none, unknown, missing, badOption, misspelt, misspeltValue, badValue, refused] = await Promise.all(
      [
        run([]),
        run(['frobnicate']),
        run(['ping']),
        run(['ping', '127.0.0.1:7878', '--bogus']),
        run(['serve', '--hots', '127.0.0.1']),
        run(['ping', '127.0.0.1:7878', '--intervall=50']),
        run(['serve', '--mode', 'loud']),
        run(['ping', '127.0.0.1:1', '--timeout', '2000']),
      ],
    );
    expect(none.code).to.equal(2);
    expect(badOption.stderr, 'no far-fetched suggestion').to.not.contain('did you mean');
    for (const [result, text] of [
      [unknown, "unknown command 'frobnicate'"],
      [missing, 'missing host:port'],
      [badOption, "Unknown option '--bogus'"],
      [misspelt, "heartwire serve: Unknown option '--hots'; did you mean --host?"],
      [misspeltValue, "heartwire ping: Unknown option '--intervall'; did you mean --interval?"],
      [badValue, '--mode must be echo or sink'],
    ] as const) {
      expect(result.code, text).to.equal(2);
      expect(result.stderr.trimEnd().split('\n'), text).to.have.length(1);
      expect(result.stderr).to.contain(text);
    }
    expect(refused.code).to.equal(1);
    expect(refused.stderr).to.match(/^heartwire ping: could not connect to 127\.0\.0\.1:1/);
  });

  it('serve + ping: live lines, a summary at --count or Ctrl-C, exit 0', async () => {
    const server = startCli(['serve', '--port', '0', '--idle-timeout', '3000']);
    running.push(server);
    const [, port] = await server.waitFor(/listening on 127\.0\.0\.1:(\d+)/, 30_000);

    const counted = await run(['ping', `127.0.0.1:${port}`, '--interval', '100', '--count', '3']);
    expect(counted.code, counted.stderr).to.equal(0);
    const lines = counted.stdout.split('\n').filter((line) => line.startsWith('seq='));
    expect(lines).to.have.length(3);
    expect(lines[2]).to.match(
      /^seq=3 {2}rtt [\d.]+ m?s {2}hb-rtt .* {2}credit out .* in .* {2}heartbeats out \d+ in \d+ {2}bytes out/,
    );
    expect(counted.stdout).to.contain('3 probes sent, 3 echoed, 0 unanswered');

    const interrupted = startCli(['ping', `127.0.0.1:${port}`, '--interval', '100']);
    running.push(interrupted);
    await interrupted.waitFor(/seq=2 /, 30_000);
    interrupted.child.kill('SIGINT');
    expect(await interrupted.exited).to.equal(0);
    expect(interrupted.stdout).to.match(/--- 127\.0\.0\.1:\d+ heartwire ping statistics ---/);
    expect(interrupted.stdout).to.match(/rtt min\/avg\/max = /);

    await server.waitFor(/connection 2 closed cleanly/, 30_000);
    server.child.kill('SIGINT');
    expect(await server.exited).to.equal(0);
    expect(server.stdout).to.contain('stopped');
  });

  it('ping ends on GOAWAY: stops probing, ends within the grace, prints the summary, exit 0', async () => {
    // An echo server that shuts down with a long grace: ping must end by itself, long before
    // the grace expires (ignoring GOAWAY, it would be force-closed at the end of the grace and
    // exit 1 with GOAWAY_GRACE_EXPIRED).
    const server = createServer({ idleTimeout: 3000 }, async (conn) => {
      for await (const message of conn) await conn.send(message);
    });
    const { port } = await server.listen(0, '127.0.0.1');
    const grace = 30_000;
    let closed: Promise<void> | undefined;
    try {
      const ping = startCli(['ping', `127.0.0.1:${port}`, '--interval', '100']);
      running.push(ping);
      await ping.waitFor(/seq=2 /, 30_000);
      const goAwayAt = performance.now();
      closed = server.close({ grace, message: 'maintenance' });
      const code = await ping.exited;
      const elapsed = performance.now() - goAwayAt;
      expect(code, `${ping.stdout}\n${ping.stderr}`).to.equal(0);
      expect(ping.stdout).to.match(/goaway from 127\.0\.0\.1:\d+: maintenance; ending/);
      expect(ping.stdout).to.match(/--- 127\.0\.0\.1:\d+ heartwire ping statistics ---/);
      expect(ping.stderr).to.equal('');
      expect(elapsed, 'ping ended within the grace').to.be.below(grace / 2);
      await closed; // every connection closed: the server did not have to force-close ping's
    } finally {
      await (closed ?? server.close({ grace: 0 }));
    }
  });

  it('demo --quick: all three claims hold, exit 0, in under 20 s', async function () {
    this.timeout(40_000);
    const started = performance.now();
    const demo = await run(['demo', '--quick']);
    const elapsed = performance.now() - started;
    expect(demo.code, `${demo.stdout}\n${demo.stderr}`).to.equal(0);
    expect(demo.stdout).to.contain('all three claims hold');
    expect(demo.stdout.match(/ PASS$/gm)).to.have.length(3);
    expect(elapsed).to.be.below(20_000);
  });

  it('demo --rolling --quick: three brokers restarted one by one under load, connections moved, lost 0', async function () {
    this.timeout(60_000);
    const demo = await run(['demo', '--rolling', '--quick']);
    expect(demo.code, `${demo.stdout}\n${demo.stderr}`).to.equal(0);
    expect(demo.stdout).to.contain('the rolling restart lost nothing');
    expect(demo.stdout).to.match(/lost 0, duplicates \d+/);
    expect(demo.stdout).to.match(/(Redis Streams|note: redis-server is not installed)/);
    const moved = /-> (\d+) connections moved/.exec(demo.stdout);
    expect(Number(moved?.[1])).to.be.at.least(3);
    // The last broker restarted gets its share back (it used to end with none: C 0).
    expect(demo.stdout).to.contain('final connections A 2, B 2, C 2 (balanced)');
    report(
      `demo --rolling --quick: ${demo.stdout
        .split('\n')
        .filter((l) => l.startsWith('  -> '))
        .join(' | ')
        .replaceAll('  -> ', '')}`,
    );
  });
});
