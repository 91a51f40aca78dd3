/**
 * Helpers for the core tests: a bare framed client on the raw transport (so the core is checked
 * against the wire format, not against itself) and an event accumulator over `ioIteration`.
 */
import { encodeFrames, FrameDecoder } from "../core/codec.ts";
import { toBytes } from "../core/bytes.ts";
import type { ClientId, IoCore, IoIterationResult } from "../mod.ts";
import { nativeTransport } from "../transports/mod.ts";
import type { Connection, ConnectOptions } from "../transports/types.ts";

export const encoder = new TextEncoder();
export const decoder = new TextDecoder();
export const text = (bytes: Uint8Array | undefined): string => (bytes ? decoder.decode(bytes) : "<none>");

/** A peer speaking the wire protocol directly over the native transport. */
export class WireClient {
  readonly conn: Connection;
  readonly decoder: FrameDecoder;
  readonly messages: Uint8Array[] = [];
  rawBytes: Uint8Array[] = [];
  raw = false;
  ended = false;
  closed = false;
  closeError: Error | undefined;
  #wake: (() => void) | undefined;

  constructor(conn: Connection, maxMessageBytes = 64 * 1024 * 1024) {
    this.conn = conn;
    this.decoder = new FrameDecoder({ maxMessageBytes });
    conn.setHandler({
      onData: (chunk) => {
        if (this.raw) this.rawBytes.push(chunk);
        else {
          this.decoder.push(chunk);
          for (let m = this.decoder.next(); m !== undefined; m = this.decoder.next()) this.messages.push(m);
        }
        this.#notify();
      },
      onDrain: () => {},
      onEnd: () => {
        // Like an ordinary client: the server is done, so close our side too.
        this.ended = true;
        conn.close();
        this.#notify();
      },
      onClose: (error) => {
        this.closed = true;
        this.closeError = error;
        this.#notify();
      },
    });
  }

  /** Connects and, when a keyword is given, announces it (without waiting for the answer). */
  static async connect(options: ConnectOptions, keyword?: string | Uint8Array): Promise<WireClient> {
    const client = new WireClient(await nativeTransport().connect(options));
    if (keyword !== undefined) client.send(keyword);
    return client;
  }

  /** Connects, announces the keyword and expects `OK`. */
  static async handshake(options: ConnectOptions, keyword: string): Promise<WireClient> {
    const client = await WireClient.connect(options, keyword);
    const answer = await client.next();
    if (text(answer) !== "OK") throw new Error(`Expected OK, got ${text(answer)}`);
    return client;
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Sends framed messages in one write. */
  send(...messages: Array<string | Uint8Array>): void {
    this.conn.write(encodeFrames(messages.map(toBytes)));
  }

  /** Waits until `condition` holds, re-checked after every event. */
  async until(condition: () => boolean, timeoutMs = 10_000, label = "condition"): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`Timed out waiting for ${label}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** The next framed message. */
  async next(timeoutMs = 10_000): Promise<Uint8Array> {
    await this.until(() => this.messages.length > 0 || this.closed, timeoutMs, "a message");
    const message = this.messages.shift();
    if (!message) throw new Error("Connection closed before a message arrived");
    return message;
  }

  /** Waits for the connection to close. */
  async waitClosed(timeoutMs = 10_000): Promise<void> {
    await this.until(() => this.closed || this.ended, timeoutMs, "close");
  }

  close(): void {
    this.conn.close();
  }
}

/** Union of the events of several `ioIteration` calls. */
export class Events {
  readonly expected = new Set<ClientId>();
  readonly unknown = new Set<ClientId>();
  readonly disconnected = new Set<ClientId>();
  readonly data = new Set<ClientId>();
  readonly empty = new Set<ClientId>();

  add(r: IoIterationResult): void {
    for (const id of r.newlyConnectedExpectedClients) this.expected.add(id);
    for (const id of r.newlyConnectedUnknownClients) this.unknown.add(id);
    for (const id of r.clientsWithDisconnectedConnection) this.disconnected.add(id);
    for (const id of r.clientsHaveDataToRead) this.data.add(id);
    for (const id of r.clientsWithEmptyOutputFifo) this.empty.add(id);
  }
}

/**
 * Runs `ioIteration` until `condition(events)` holds; `onResult` may act on each result (read,
 * answer). Fails after `timeoutMs`.
 */
export async function iterateUntil(
  core: IoCore,
  condition: (events: Events) => boolean,
  timeoutMs = 10_000,
  onResult?: (r: IoIterationResult) => void,
): Promise<Events> {
  const events = new Events();
  const deadline = Date.now() + timeoutMs;
  while (!condition(events)) {
    if (Date.now() > deadline) throw new Error("Timed out waiting for core events");
    const r = await core.ioIteration(50);
    events.add(r);
    onResult?.(r);
  }
  return events;
}

/** A quiet logger that records what the core reports. */
export function recordingLogger(): {
  lines: string[];
  info(m: string): void;
  warn(m: string): void;
  error(m: string): void;
} {
  const lines: string[] = [];
  return {
    lines,
    info: (m: string) => lines.push(`info: ${m}`),
    warn: (m: string) => lines.push(`warn: ${m}`),
    error: (m: string) => lines.push(`error: ${m}`),
  };
}
