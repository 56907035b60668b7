/**
 * Plain TCP helpers shared by the peers that run on raw sockets.
 * @module
 */
import net from 'node:net';

/** Listen on 127.0.0.1 (any port) and hand every accepted socket to `onSocket`; resolves to the port. */
export function listenTcp(onSocket: (socket: net.Socket) => void): Promise<number> {
  const server = net.createServer({ noDelay: true }, onSocket);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
}

/** Connect one socket to 127.0.0.1:`port`. */
export function connectTcp(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** Run `open` `count` times with at most `parallel` in flight; resolves to the results in order. */
export async function openAll<T>(
  count: number,
  parallel: number,
  open: (index: number) => Promise<T>,
): Promise<T[]> {
  const results: T[] = new Array<T>(count);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const index = next++;
      results[index] = await open(index);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(parallel, count)) }, worker));
  return results;
}

/** Connect `count` sockets to 127.0.0.1:`port`, at most `parallel` at a time. */
export function connectAll(port: number, count: number, parallel: number): Promise<net.Socket[]> {
  return openAll(count, parallel, () => connectTcp(port));
}
