/**
 * The systems under test: which peer module runs them and with which options.
 * @module
 */
import { MiB } from './common.js';

/** One system under test. */
export interface System {
  /** Short id used in results and on the command line. */
  id: string;
  /** Label in tables and charts. */
  label: string;
  /** Peer module in `peers/`. */
  peer: string;
  /** Options for both roles (see each peer module). */
  options: Record<string, unknown>;
  /** Colour in the chart. */
  colour: string;
  /** Live heap each of its processes holds, MiB (see child.ts); default: `--app-heap`, else 0. */
  appHeapMb?: number;
}

/**
 * `system` in processes that hold `mb` MiB of live objects, as an application's would (see
 * child.ts): id `<id>@heap<mb>`.
 */
export function withAppHeap(system: System, mb: number): System {
  return {
    ...system,
    id: `${system.id}@heap${mb}`,
    label: `${system.label} (${mb} MiB heap)`,
    appHeapMb: mb,
  };
}

/** How heartwire's server application takes messages (see peers/heartwire.ts). */
export type HeartwireReceive = 'read' | 'iterate' | 'handle-sync' | 'handle-async' | 'handle16-async';
/** How heartwire's client application gives messages. */
export type HeartwireSend = 'write' | 'send';

export const HEARTWIRE_RECEIVE_MODES: readonly HeartwireReceive[] = [
  'read',
  'iterate',
  'handle-sync',
  'handle-async',
  'handle16-async',
];

/** What a user writes for each mode, for labels. */
const RECEIVE_LABEL: Record<HeartwireReceive, string> = {
  read: 'read()',
  iterate: 'for await',
  'handle-sync': 'handle(sync fn)',
  'handle-async': 'handle(async fn)',
  'handle16-async': 'handle(async fn, concurrency 16)',
};
const SEND_LABEL: Record<HeartwireSend, string> = { write: 'write()', send: 'await send()' };

/**
 * heartwire with `connection` options (both roles, plus role-specific `extra`), a receive mode
 * (`read`: `read()` + `'readable'`, the default and fastest; `iterate`: `for await`; `handle-*`:
 * `handle()`) and a send mode (`write`: `write()` + `'drain'`, the default; `send`: `await send()`
 * in a loop). Ids: `heartwire` for write + read, else `heartwire-<receive>` (write) or
 * `heartwire-send-<receive>`; {@link heartwireById} parses them back.
 */
export function heartwire(
  connection: Record<string, unknown> = {},
  receive: HeartwireReceive = 'read',
  extra: { server?: Record<string, unknown>; client?: Record<string, unknown> } = {},
  send: HeartwireSend = 'write',
): System {
  const plain = receive === 'read' && send === 'write';
  return {
    id: plain ? 'heartwire' : `heartwire-${send === 'send' ? 'send-' : ''}${receive}`,
    label: plain ? 'heartwire' : `heartwire ${SEND_LABEL[send]} + ${RECEIVE_LABEL[receive]}`,
    peer: 'heartwire',
    options: {
      receive,
      send,
      server: { ...connection, ...extra.server },
      client: { ...connection, ...extra.client },
    },
    colour: '#d62728',
  };
}

/** The heartwire system an id names (`heartwire`, `heartwire-iterate`, `heartwire-send-handle-async`, …). */
export function heartwireById(id: string): System | undefined {
  const match = /^heartwire(?:-(send))?(?:-(.+))?$/.exec(id);
  if (match === null) return undefined;
  const send: HeartwireSend = match[1] === 'send' ? 'send' : 'write';
  const receive = (match[2] ?? 'read') as HeartwireReceive;
  if (!HEARTWIRE_RECEIVE_MODES.includes(receive)) return undefined;
  return heartwire({}, receive, {}, send);
}

export const RAW: System = {
  id: 'raw',
  label: 'raw framing (batched)',
  peer: 'raw',
  options: {},
  colour: '#333333',
};
export const BULK: System = {
  id: 'bulk',
  label: 'raw TCP bulk bytes',
  peer: 'bulk',
  options: {},
  colour: '#999999',
};
export const WS: System = { id: 'ws', label: 'ws', peer: 'ws', options: {}, colour: '#1f77b4' };
export const HTTP2_TUNED: System = {
  id: 'http2-16m',
  label: 'node:http2 (16 MiB windows)',
  peer: 'http2',
  options: { window: 16 * MiB },
  colour: '#2ca02c',
};
export const HTTP2_DEFAULT: System = {
  id: 'http2',
  label: 'node:http2 (default 64 KiB windows)',
  peer: 'http2',
  options: {},
  colour: '#98df8a',
};
export const YAMUX: System = {
  id: 'yamux',
  label: '@chainsafe/libp2p-yamux',
  peer: 'yamux',
  options: {},
  colour: '#9467bd',
};
