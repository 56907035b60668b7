/**
 * Checks the state table in code (`src/protocol/connection/state.ts`) against SPEC.md §9.3, parsed
 * from the spec itself (as the vectors test does for §12): the moves of the two diagrams, and per
 * role and state the frames accepted, the frames sent and the deadlines running.
 */
import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { encodeControlFrame, encodeFrame } from '../../src/protocol/codec.js';
import { FrameType, PREAMBLE } from '../../src/protocol/constants.js';
import { Engine } from '../../src/protocol/engine.js';
import { concatBytes } from '../../src/testing/arbitraries.js';
import { Pair } from './pair.js';
import { frameBit, stateTable } from '../../src/protocol/connection/state.js';
import type { StateRow } from '../../src/protocol/connection/state.js';
import { Timer, timerBit } from '../../src/protocol/connection/timers.js';
import type { ConnectionState, Role } from '../../src/protocol/types.js';

const SPEC_PATH = new URL('../../SPEC.md', import.meta.url);
const ROLES: readonly Role[] = ['client', 'server'];

/** §9.3's state names, per role, to the engine's. */
const STATE_NAMES: Record<Role, Record<string, ConnectionState>> = {
  client: {
    HANDSHAKING: 'handshaking',
    OPEN: 'open',
    CLOSING: 'closing',
    CLOSE_SENT: 'close-sent',
    CLOSE_ACKED: 'close-acked',
    FIN_SENT: 'fin-sent',
    CLOSED: 'closed',
  },
  server: {
    AWAITING_HELLO: 'handshaking',
    OPEN: 'open',
    GOING_AWAY: 'going-away',
    PEER_CLOSED: 'peer-closed',
    CLOSE_ACK_SENT: 'close-ack-sent',
    CLOSED: 'closed',
  },
};
/** Frame names as §9.3 writes them (longest first: CLOSE_ACK before CLOSE). */
const FRAMES: readonly [string, number][] = [
  ['CLOSE_ACK', FrameType.CLOSE_ACK],
  ['HEARTBEAT', FrameType.HEARTBEAT],
  ['WELCOME', FrameType.WELCOME],
  ['GOAWAY', FrameType.GOAWAY],
  ['CREDIT', FrameType.CREDIT],
  ['HELLO', FrameType.HELLO],
  ['CLOSE', FrameType.CLOSE],
  ['ERROR', FrameType.ERROR],
  ['DATA', FrameType.DATA],
];
const DEADLINES: readonly [string, number][] = [
  ['handshake', Timer.HANDSHAKE],
  ['idle', Timer.IDLE],
  ['close', Timer.CLOSE],
  ['grace', Timer.GRACE],
];
const SPEC_TIMERS = DEADLINES.reduce((mask, [, id]) => mask | timerBit(id as never), 0);
const ERROR_BIT = frameBit(FrameType.ERROR);

function section(): string {
  const spec = readFileSync(SPEC_PATH, 'utf8');
  const start = spec.indexOf('### 9.3 State machines');
  const end = spec.indexOf('### 9.4', start);
  expect(start, '§9.3 heading').to.be.greaterThan(0);
  return spec.slice(start, end);
}

/** The frame types named in `text` (`CLOSE_ACK` is not also a CLOSE), as a mask of `frameBit`s. */
function frames(text: string): number {
  let rest = text.replace(/`/g, '');
  let mask = 0;
  for (const [name, type] of FRAMES) {
    const pattern = new RegExp(`\\b${name}\\b`, 'g');
    if (pattern.test(rest)) mask |= frameBit(type);
    rest = rest.replace(pattern, ' ');
  }
  return mask;
}

function deadlines(text: string): number {
  let mask = 0;
  for (const [name, id] of DEADLINES)
    if (new RegExp(`\\b${name}\\b`).test(text)) mask |= timerBit(id as never);
  return mask;
}

/** Text outside parentheses (required), and inside them (optional). */
function splitOptional(text: string): { required: string; optional: string } {
  const optional = [...text.matchAll(/\(([^)]*)\)/g)].map((m) => m[1]).join(', ');
  return { required: text.replace(/\([^)]*\)/g, ' '), optional };
}

interface SpecRow {
  role: Role;
  state: ConnectionState;
  accepts: number;
  sendsRequired: number;
  sendsOptional: number;
  timersRequired: number;
  timersOptional: number;
}

/** The rows of §9.3's table, one per role and state. */
function tableRows(): SpecRow[] {
  const lines = section()
    .split('\n')
    .filter((line) => line.startsWith('|') && !line.startsWith('|---') && !line.startsWith('| State'));
  expect(lines.length, 'rows of the §9.3 table').to.be.greaterThan(5);
  const rows: SpecRow[] = [];
  for (const line of lines) {
    const cells = line
      .split('|')
      .slice(1, -1)
      .map((cell) => cell.trim());
    expect(cells, line).to.have.length(4);
    const [who, accepted, sent, running] = cells as [string, string, string, string];
    // "Client `A`", "Server `A`, `B`", "`A`, Server `B`" (no role: both), remarks in parentheses.
    let role: Role | undefined;
    const names: [Role | undefined, string][] = [];
    for (const part of who.replace(/\([^)]*\)/g, '').split(',')) {
      const match = /^\s*(Client|Server)?\s*`([A-Z_]+)`\s*$/.exec(part);
      expect(match, `state cell "${who}"`).to.not.equal(null);
      if (match![1] !== undefined) role = match![1].toLowerCase() as Role;
      names.push([match![1] === undefined && names.length === 0 ? undefined : role, match![2]!]);
    }
    // Accepted: frames named before any remark (":" or ";" or parentheses).
    const accepts = frames(accepted.split(/[:;]/)[0]!.replace(/\([^)]*\)/g, ' '));
    const sends = splitOptional(sent);
    const timers = splitOptional(running);
    for (const [r, name] of names) {
      for (const each of r === undefined ? ROLES : [r]) {
        const state = STATE_NAMES[each][name];
        expect(state, `${name} is a ${each} state of §9.3`).to.not.equal(undefined);
        rows.push({
          role: each,
          state: state!,
          accepts,
          sendsRequired: frames(sends.required.replace(/\bpreamble\b/g, '')),
          sendsOptional: frames(sends.optional.replace(/\bpreamble\b/g, '')),
          timersRequired: deadlines(timers.required),
          timersOptional: deadlines(timers.optional),
        });
      }
    }
  }
  return rows;
}

/** The moves of the §9.3 diagrams, per role, as "from>to" strings. */
function diagramMoves(): Record<Role, Set<string>> {
  const text = section();
  const moves: Record<Role, Set<string>> = { client: new Set(), server: new Set() };
  for (const role of ROLES) {
    const heading = role === 'client' ? '**Client**' : '**Server**';
    const start = text.indexOf('```', text.indexOf(heading)) + 3;
    const block = text.slice(start, text.indexOf('```', start));
    for (const line of block.split('\n').filter((l) => l.includes('-->'))) {
      const groups = line.split(/\s*--.*?-->\s*/).map((group) =>
        group
          .replace(/\(.*\)/, '')
          .split('|')
          .map((name) => name.trim()),
      );
      for (let i = 0; i + 1 < groups.length; i++) {
        for (const from of groups[i]!) {
          for (const to of groups[i + 1]!) {
            const a = STATE_NAMES[role][from];
            const b = STATE_NAMES[role][to];
            expect(a, `${role} state ${from}`).to.not.equal(undefined);
            expect(b, `${role} state ${to}`).to.not.equal(undefined);
            moves[role].add(`${a}>${b}`);
          }
        }
      }
    }
  }
  return moves;
}

function names(mask: number, table: readonly [string, number][], bit: (id: number) => number): string[] {
  return table.filter(([, id]) => (mask & bit(id)) !== 0).map(([name]) => name);
}
const frameNames = (mask: number): string[] => names(mask, FRAMES, frameBit);
const timerNames = (mask: number): string[] => names(mask, DEADLINES, (id) => timerBit(id as never));

describe('SPEC.md §9.3 and the state table in code', () => {
  const rows = tableRows();
  const moves = diagramMoves();

  it('the table has a row for every state of each role but CLOSED, and only those', () => {
    for (const role of ROLES) {
      const specStates = rows.filter((r) => r.role === role).map((r) => r.state);
      const codeStates = Object.keys(stateTable(role)).filter((s) => s !== 'closed');
      expect(specStates, role).to.have.members(codeStates);
    }
  });

  for (const role of ROLES) {
    describe(role, () => {
      for (const spec of rows.filter((r) => r.role === role)) {
        const code = (): StateRow => stateTable(role)[spec.state]!;
        it(`${spec.state}: the frames accepted`, () => {
          expect(frameNames(code().accepts)).to.have.members(frameNames(spec.accepts));
        });
        it(`${spec.state}: the frames sent (ERROR aside: §11)`, () => {
          const sends = code().sends & ~ERROR_BIT;
          expect(frameNames(sends)).to.include.members(frameNames(spec.sendsRequired & ~ERROR_BIT));
          expect(frameNames(spec.sendsRequired | spec.sendsOptional)).to.include.members(frameNames(sends));
        });
        it(`${spec.state}: the deadlines running`, () => {
          const timers = code().timers & SPEC_TIMERS;
          expect(timerNames(timers)).to.include.members(timerNames(spec.timersRequired));
          expect(timerNames(spec.timersRequired | spec.timersOptional)).to.include.members(
            timerNames(timers),
          );
        });
      }

      it('the moves of the diagram (to CLOSED: from any state)', () => {
        const table = stateTable(role);
        const code = new Set<string>();
        for (const row of Object.values(table)) for (const to of row!.next) code.add(`${row!.state}>${to}`);
        const spec = [...moves[role]].filter((move) => !move.endsWith('>closed'));
        expect([...code]).to.have.members(spec);
        expect(table.closed!.next).to.deep.equal([]);
      });
    });
  }

  it('a table that disagrees fails (the parser reads what it should)', () => {
    const client = rows.find((r) => r.role === 'client' && r.state === 'close-sent')!;
    expect(frameNames(client.accepts)).to.have.members([
      'DATA',
      'CREDIT',
      'HEARTBEAT',
      'GOAWAY',
      'CLOSE_ACK',
      'ERROR',
    ]);
    const server = rows.find((r) => r.role === 'server' && r.state === 'handshaking')!;
    expect(frameNames(server.sendsOptional)).to.have.members(['WELCOME', 'ERROR']);
    expect(moves.server.has('open>peer-closed')).to.equal(true);
    expect(moves.server.has('going-away>closed')).to.equal(true);
  });
});

/** One frame of each type of §9.3's table, valid on the wire. */
const SAMPLES: readonly [string, Uint8Array][] = [
  ['DATA', encodeFrame({ type: FrameType.DATA, end: true, payload: new Uint8Array([1]) })],
  ['CREDIT', encodeControlFrame({ type: FrameType.CREDIT, creditLimit: 0, consumedMessages: 0 })],
  [
    'HEARTBEAT',
    encodeControlFrame({
      type: FrameType.HEARTBEAT,
      echo: false,
      timestamp: 0,
      echoTimestamp: 0,
      echoDelay: 0,
      receivedBytes: 0,
      creditLimit: 0,
      consumedMessages: 0,
    }),
  ],
  [
    'HELLO',
    encodeControlFrame({
      type: FrameType.HELLO,
      hello: {
        versions: [1],
        extensions: [],
        idleTimeoutMs: 20_000,
        initialCredit: 65_536,
        maxFramePayload: 65_536,
        maxMessageSize: 1024,
        applicationProtocols: [],
      },
    }),
  ],
  [
    'WELCOME',
    encodeControlFrame({
      type: FrameType.WELCOME,
      welcome: {
        version: 1,
        extensions: [],
        idleTimeoutMs: 20_000,
        initialCredit: 65_536,
        maxFramePayload: 65_536,
        maxMessageSize: 1024,
        clientIdleTimeoutMs: 20_000,
        applicationProtocol: '',
      },
    }),
  ],
  [
    'GOAWAY',
    encodeControlFrame({
      type: FrameType.GOAWAY,
      goAway: {
        graceMs: 1000,
        reason: 1,
        consumedMessages: 0,
        retryAfterMs: 0,
        doNotReconnect: false,
        message: '',
      },
    }),
  ],
  ['CLOSE', encodeControlFrame({ type: FrameType.CLOSE, close: { sentMessages: 0, consumedMessages: 0 } })],
  [
    'CLOSE_ACK',
    encodeControlFrame({
      type: FrameType.CLOSE_ACK,
      closeAck: { sentMessages: 0, consumedMessages: 0, deliveredMessages: 0 },
    }),
  ],
  [
    'ERROR',
    encodeControlFrame({
      type: FrameType.ERROR,
      error: { code: 1, message: 'x', consumedMessages: 0, deliveredMessages: 0 },
    }),
  ],
];

/** An engine of `role` brought to `state` by a real exchange with its peer (bytes after it not moved). */
function engineIn(role: Role, state: ConnectionState): { engine: Engine; now: number; preamble: boolean } {
  if (state === 'handshaking') {
    const engine = new Engine({ role });
    engine.start(0);
    return { engine, now: 0, preamble: true };
  }
  const pair = new Pair();
  const { client, server } = pair;
  const now = (): number => pair.now;
  if (state === 'going-away') server.engine.goAway(now(), { graceMs: 60_000 });
  if (state === 'closing') {
    client.engine.trySend(now(), new Uint8Array(10));
    client.engine.close(now());
  }
  if (['close-sent', 'peer-closed', 'close-acked', 'close-ack-sent', 'fin-sent'].includes(state)) {
    server.engine.trySend(now(), new Uint8Array(10));
    pair.pump();
    client.engine.close(now());
    pair.pump();
  }
  if (['close-acked', 'close-ack-sent', 'fin-sent'].includes(state)) {
    server.engine.finish(now());
    pair.pump();
  }
  if (state === 'fin-sent') {
    client.engine.read(now());
    client.engine.pollTransmit(now());
  }
  const engine = role === 'client' ? client.engine : server.engine;
  expect(engine.state, `${role} brought to ${state}`).to.equal(state);
  return { engine, now: now(), preamble: false };
}

describe('the engine honours the state table: a frame a state does not accept is a PROTOCOL_ERROR', () => {
  for (const role of ROLES) {
    for (const row of Object.values(stateTable(role))) {
      if (row!.state === 'closed') continue;
      const refused = SAMPLES.filter(([name]) => (row!.accepts & frames(name)) === 0);
      it(`${role} ${row!.state}: ${refused.map(([name]) => name).join(', ') || 'none refused'}`, () => {
        for (const [name, bytes] of refused) {
          const { engine, now, preamble } = engineIn(role, row!.state);
          engine.receive(now, preamble ? concatBytes([PREAMBLE, bytes]) : bytes);
          expect(engine.closed?.error?.code, `${name} in ${role} ${row!.state}`).to.equal('PROTOCOL_ERROR');
        }
      });
    }
  }
});
