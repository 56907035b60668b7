/**
 * The messages between the orchestrator and its child processes: every command carries an
 * `id`, every reply echoes it with `ok` and a `result` or an `error`.
 * @module
 */

/** Configuration of a child process (its only argument, as JSON). */
export interface ChildConfig {
  role: 'server' | 'client' | 'proxy';
  /** Peer module name (`peers/<peer>.ts`); for the proxy, unused. */
  peer: string;
  options: Record<string, unknown>;
  /** Live heap the process holds, MiB (see child.ts). */
  appHeapMb?: number;
}

/** A command from the orchestrator. */
export interface Command {
  id: number;
  cmd: string;
  args?: Record<string, unknown>;
}

/** A reply from a child. */
export interface Reply {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

/** The first message of every child once it is ready for commands. */
export interface Ready {
  ready: true;
  port?: number;
}
