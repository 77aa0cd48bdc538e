/**
 * The request an event belongs to, without passing it through every layer: the HTTP layer runs
 * each request inside requestContext (AsyncLocalStorage) when notifications are on, and the sink
 * reads it when an event is recorded, however deep the call.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

export interface RequestInfo {
  id: string;
  /** Client address (X-Forwarded-For's first entry, else the socket's ip:port), as registry:2 reports it. */
  addr: string;
  host: string;
  method: string;
  useragent: string;
  /** scheme://host the client used (or http.host), for target.url. */
  baseUrl: string;
  /** The authenticated user, if any; read when the event is recorded (authentication runs after this is set). */
  user(): string | undefined;
}

export const requestContext = new AsyncLocalStorage<RequestInfo>();
