/**
 * Closing kept-alive connections during a drain without cutting a response's tail. Node's
 * server.closeIdleConnections() counts a connection idle once its response has finished, which
 * is when the last bytes were handed to the socket, not when they left it: to a slow client the
 * tail of a big blob (the bytes held back until the digest verified) was still queued, and the
 * destroy cut it (test/ops/drain.test.ts caught 28 KiB missing of 512 MiB). Here a connection
 * whose requests have all ended gets socket.end(), which sends what is queued and then the FIN.
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

export class IdleConnections {
  private readonly inFlight = new Map<Socket, number>();

  constructor(server: Server) {
    server.on('request', (req, res) => {
      const socket = req.socket;
      if (!this.inFlight.has(socket)) socket.once('close', () => this.inFlight.delete(socket));
      this.inFlight.set(socket, (this.inFlight.get(socket) ?? 0) + 1);
      res.once('close', () => {
        const n = this.inFlight.get(socket);
        if (n !== undefined) this.inFlight.set(socket, n - 1);
      });
    });
  }

  /** Ends (gracefully) every connection that has served requests and has none in progress now. */
  endIdle(): void {
    for (const [socket, n] of this.inFlight) {
      if (n === 0 && !socket.writableEnded && !socket.destroyed) socket.end();
    }
  }
}
