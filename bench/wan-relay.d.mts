// Types of wan-relay.mjs for the TypeScript tests that use it as a slow link.
export interface RelayStats { connections: number; open: number; bytesUp: number; bytesDown: number }
export interface Relay { port: number; url: string; target: string; stats(): RelayStats; reset(): void; close(): Promise<void> }
export function parseRate(s: string | number): number;
export function startRelay(options: { target: string; rttMs?: number; rateBps?: number; listenPort?: number }): Promise<Relay>;
