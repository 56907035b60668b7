/**
 * The public API never crashes its caller's process (issue 10, A and E): connection handlers
 * owned by the server, end()/abort() inside event handlers after the engine closed, option
 * validation, listen() errors, payload types, typed errors with causes.
 */
import { expect } from 'chai';
import { HandlerError } from '../../src/protocol/errors.js';
import type { Connection } from '../../src/node/connection.js';
import type { Server } from '../../src/node/server.js';
import { codeOf, observe, rejection, useHarness, waitFor, within } from './helpers.js';

describe('node API: the server owns its connection handlers (A1)', function () {
  this.timeout(30_000);
  const h = useHarness();
  /** A server whose handler is a direct `'connection'` listener (the harness's own wraps it). */
  async function serve(handler: (conn: Connection) => unknown): Promise<{ server: Server; port: number }> {
    const served = await h().server({});
    served.server.on('connection', handler);
    return served;
  }

  it('a handler that throws: the connection is aborted with HandlerError, reported, generic reason on the wire', async () => {
    const { server, port } = await serve(() => {
      throw new Error('secret detail of a bug');
    });
    const reported: [HandlerError, Connection | undefined][] = [];
    server.on('handler-error', (error, connection) => reported.push([error, connection]));
    const client = await h().connect({ port });
    const error = rejection(await within(observe(client.closed), 10_000, 'client closed'), 'client');
    expect(codeOf(error)).to.equal('INTERNAL_ERROR');
    expect(error.remote).to.equal(true);
    expect(error.message).to.not.include('secret');
    await waitFor(() => reported.length === 1, 5000, 'handler-error');
    const [failure, connection] = reported[0]!;
    expect(failure).to.be.instanceOf(HandlerError);
    expect(failure.code).to.equal('INTERNAL_ERROR');
    expect((failure.cause as Error).message).to.equal('secret detail of a bug');
    const serverClosed = rejection(await observe(connection!.closed), 'server side');
    expect(serverClosed).to.equal(failure);
  });

  it('an async handler rejecting with something else: aborted and reported', async () => {
    const { server, port } = await serve(async (conn) => {
      for await (const _message of conn) throw new TypeError('handler bug');
    });
    const reported: HandlerError[] = [];
    server.on('handler-error', (error) => reported.push(error));
    const client = await h().connect({ port });
    await client.send(new Uint8Array(10));
    const error = rejection(await within(observe(client.closed), 10_000, 'client closed'), 'client');
    expect(codeOf(error)).to.equal('INTERNAL_ERROR');
    await waitFor(() => reported.length === 1, 5000, 'handler-error');
    expect(reported[0]!.cause).to.be.instanceOf(TypeError);
  });

  it("an async handler rejecting with the connection's own close error: swallowed, nothing reported", async () => {
    let handlerOutcome: unknown;
    const { server, port } = await serve(async (conn) => {
      try {
        for await (const message of conn) await conn.send(message);
      } catch (error) {
        handlerOutcome = error;
        throw error;
      }
    });
    const reported: HandlerError[] = [];
    server.on('handler-error', (error) => reported.push(error));
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(w);
    };
    process.on('warning', onWarning);
    try {
      const client = await h().connect({ port });
      client.write(new Uint8Array(100));
      client.abort();
      await waitFor(() => handlerOutcome !== undefined, 5000, 'the handler to reject');
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(codeOf(handlerOutcome)).to.equal('CANCELLED');
      expect(reported).to.deep.equal([]);
      expect(warnings.filter((w) => /handler/.test(w.message))).to.deep.equal([]);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('without a handler-error listener: one process warning, no crash', async () => {
    const { port } = await serve(async () => {
      await Promise.resolve();
      throw new Error('boom');
    });
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(w);
    };
    process.on('warning', onWarning);
    try {
      for (let i = 0; i < 3; i++) {
        const client = await h().connect({ port });
        const error = rejection(await within(observe(client.closed), 10_000, 'client closed'), 'client');
        expect(codeOf(error)).to.equal('INTERNAL_ERROR');
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
      const ours = warnings.filter(
        (w) => (w as Error & { code?: string }).code === 'HEARTWIRE_HANDLER_ERROR',
      );
      expect(ours.length, 'warnings printed').to.equal(1);
    } finally {
      process.off('warning', onWarning);
    }
  });
});
