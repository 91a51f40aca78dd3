/**
 * A plain `node:net` client for the regression tests: a peer the library did not write, on every
 * runtime, that records what it received and how the server ended the connection.
 *
 * @module
 */
import { connect, type Socket } from "node:net";
import { FrameDecoder } from "../mod.ts";
import { wakeOrTimeout } from "./_settle.ts";

const decoder = new TextDecoder();

/** How a {@linkcode NetPeer}'s connection ended, and what it received before. */
export interface PeerOutcome {
  /** Everything received, decoded as UTF-8. */
  text: string;
  /** True when the server ended its side cleanly (FIN) before the socket closed. */
  eof: boolean;
  /** The socket error's code (such as `ECONNRESET`), if it closed with one. */
  error?: string;
  /** True when the connection was still open after the deadline (it was then destroyed). */
  timedOut?: boolean;
}

/** A TCP client on loopback that keeps every received byte. */
export class NetPeer {
  readonly socket: Socket;
  readonly chunks: Uint8Array[] = [];
  #eof = false;
  #isClosed = false;
  #error: string | undefined;
  #closed: Promise<void>;
  #wake: (() => void) | undefined;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on("data", (chunk: Uint8Array) => {
      this.chunks.push(new Uint8Array(chunk));
      this.#wake?.();
    });
    socket.on("end", () => {
      this.#eof = true;
      this.#wake?.();
    });
    socket.on("error", (err: Error & { code?: string }) => {
      this.#error ??= err.code ?? err.message;
    });
    this.#closed = new Promise((resolve) =>
      socket.on("close", () => {
        this.#isClosed = true;
        resolve();
        this.#wake?.();
      })
    );
  }

  /** Connects to `port` on `host` and resolves once the connection is established. */
  static connect(port: number, host = "127.0.0.1"): Promise<NetPeer> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host });
      socket.once("error", reject);
      socket.once("connect", () => {
        socket.off("error", reject);
        resolve(new NetPeer(socket));
      });
    });
  }

  /** Everything received so far, as one buffer. */
  bytes(): Uint8Array {
    let total = 0;
    for (const chunk of this.chunks) total += chunk.length;
    const out = new Uint8Array(total);
    let offset = 0;
    for (const chunk of this.chunks) {
      out.set(chunk, offset);
      offset += chunk.length;
    }
    return out;
  }

  /** Everything received so far, decoded as UTF-8. */
  text(): string {
    return decoder.decode(this.bytes());
  }

  /** Everything received so far, decoded as frames, each message as UTF-8. */
  frames(): string[] {
    const frameDecoder = new FrameDecoder();
    frameDecoder.push(this.bytes());
    const out: string[] = [];
    for (let m = frameDecoder.next(); m !== undefined; m = frameDecoder.next()) out.push(decoder.decode(m));
    return out;
  }

  /** Writes `data` in one write. */
  write(data: string | Uint8Array): void {
    this.socket.write(data);
  }

  /** Ends our side (FIN); reading goes on. */
  end(): void {
    this.socket.end();
  }

  /** Waits until `condition` holds or the socket closes; false after `timeoutMs`. */
  async until(condition: () => boolean, timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (this.#isClosed) return condition();
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await wakeOrTimeout(Math.min(left, 100), (wake) => (this.#wake = wake));
    }
    return true;
  }

  /** Waits for the socket to close (destroying it after `timeoutMs`) and reports how it ended. */
  async outcome(timeoutMs = 5000): Promise<PeerOutcome> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = await Promise.race([
      this.#closed.then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs))),
    ]);
    clearTimeout(timer);
    if (timedOut) this.socket.destroy();
    const outcome: PeerOutcome = { text: this.text(), eof: this.#eof };
    if (this.#error !== undefined) outcome.error = this.#error;
    if (timedOut) outcome.timedOut = true;
    return outcome;
  }
}

/**
 * Connects, writes each of `writes` as its own write, half-closes when `end` is set, and reports
 * everything received until the server closes (or `timeoutMs` passes).
 *
 * @example
 * ```ts
 * const got = await exchange(port, ["GET / HTTP/1.0\r\n\r\n"]);
 * assert.deepEqual(got, { text: "HTTP/1.1 404 Not Found\r\n...", eof: true });
 * ```
 */
export async function exchange(
  port: number,
  writes: ReadonlyArray<string | Uint8Array>,
  options: { host?: string; end?: boolean; timeoutMs?: number } = {},
): Promise<PeerOutcome> {
  const peer = await NetPeer.connect(port, options.host);
  for (const data of writes) peer.write(data);
  if (options.end) peer.end();
  return peer.outcome(options.timeoutMs);
}
