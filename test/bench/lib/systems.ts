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
}

/**
 * heartwire with `connection` options (both roles, plus role-specific `extra`) and a receive
 * mode: `read` (`read()` + `'readable'`, the default and fastest), `iterate` (`for await`) or
 * `handle` (`handle()`).
 */
export function heartwire(
  connection: Record<string, unknown> = {},
  receive: 'read' | 'iterate' | 'handle' = 'read',
  extra: { server?: Record<string, unknown>; client?: Record<string, unknown> } = {},
): System {
  return {
    id: receive === 'read' ? 'heartwire' : `heartwire-${receive}`,
    label:
      receive === 'read' ? 'heartwire' : `heartwire (${receive === 'iterate' ? 'for await' : 'handle()'})`,
    peer: 'heartwire',
    options: {
      receive,
      server: { ...connection, ...extra.server },
      client: { ...connection, ...extra.client },
    },
    colour: '#d62728',
  };
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
