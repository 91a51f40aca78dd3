/**
 * Reading a `node:net` socket into memory the connection reuses, as node:net's `onread` option does,
 * for a socket that is already open (an accepted one has no such option). node:net otherwise allocates
 * a new 64 KiB buffer per read, and the page faults of that churn cost Node's receiver of a 1 GiB stream
 * about 0.3 s of CPU more than the bare pair's (137k against 27k minor faults per GiB).
 *
 * @module
 */
import process from "node:process";
import type { Socket } from "node:net";

/**
 * The read buffer while the receiver copies what follows (a large message, a stream): reused. As large
 * as node:net's own reads: libuv reads a ready socket up to 32 times before it polls the others, and
 * with 256 KiB reads a 16-byte round trip on another connection during a 4 GiB stream took 20–28 ms
 * (p50) instead of 3–5 ms, for 10% less receiver CPU.
 */
const BULK_READ_BYTES = 64 * 1024;
/** Bulk reads begin when the receiver will copy at least this many bytes next. */
export const BULK_READ_MIN_BYTES = 64 * 1024;
/** The read buffer otherwise: what it reads is copied out, so it is reused and stays small. */
const SMALL_READ_BYTES = 16 * 1024;

/** node:net's own names for the `onread` option it keeps on a socket, and the handle's method it calls. */
interface OnreadSocket {
  _handle?: { useUserBuffer?(buffer: Uint8Array): void } | null;
  [key: symbol]: unknown;
}

/** node:net's `onread` keys (`kBuffer`, `kBufferCb`, `kBufferGen`), found once; `null` where absent. */
let onreadKeys: symbol[] | null | undefined;

function keysOf(socket: Socket): symbol[] | null {
  if (onreadKeys !== undefined) return onreadKeys;
  // Deno's and Bun's node:net are other code under the same names: only Node's is known to work.
  if ("Deno" in globalThis || process.versions.bun !== undefined) return onreadKeys = null;
  const own = Object.getOwnPropertySymbols(socket);
  const keys = ["kBuffer", "kBufferCb", "kBufferGen"].map((name) => own.find((k) => k.description === name));
  return onreadKeys = keys.every((k) => k !== undefined) ? keys as symbol[] : null;
}

/**
 * True when `socket` (plain TCP or UNIX, on Node) can be switched to {@linkcode NodeOwnReads}.
 *
 * @example
 * ```ts
 * import { Socket } from "node:net";
 * import { canReadIntoOwnMemory } from "./_node_read_memory.ts";
 * console.log(canReadIntoOwnMemory(new Socket())); // true on Node
 * ```
 */
export function canReadIntoOwnMemory(socket: Socket): boolean {
  return keysOf(socket) !== null;
}

/**
 * The reads of one socket into reused memory. While the receiver gives its chunks back and says it
 * will copy the next bytes (`onData` returns a count), reads go into one 64 KiB buffer, never past
 * that count; otherwise into a 16 KiB buffer whose bytes are copied out before they are delivered.
 *
 * @example
 * ```ts
 * // NodeConnection switches a socket once onData returns 64 KiB or more:
 * // NodeOwnReads.start(socket, wanted, (chunk) => handler.onData(chunk));
 * ```
 */
export class NodeOwnReads {
  #bulk: Uint8Array | undefined = undefined;
  #small: Uint8Array | undefined = undefined;
  /** Bytes the receiver copies next (0: none); the last read went into `#bulk`. */
  #wanted: number;
  #inBulk = false;
  readonly #deliver: (chunk: Uint8Array) => number | void;

  private constructor(wanted: number, deliver: (chunk: Uint8Array) => number | void) {
    this.#wanted = wanted;
    this.#deliver = deliver;
  }

  /**
   * Switches `socket`, whose receiver will copy the next `wanted` bytes, to reads delivered through
   * `deliver` (the receiver's `onData`); `undefined` when it cannot (its handle is gone, or has no
   * `useUserBuffer`). Switch only while nothing is buffered in the socket's stream and reading is not
   * paused.
   */
  static start(
    socket: Socket,
    wanted: number,
    deliver: (chunk: Uint8Array) => number | void,
  ): NodeOwnReads | undefined {
    const keys = keysOf(socket);
    const s = socket as unknown as OnreadSocket;
    const handle = s._handle;
    if (keys === null || typeof handle?.useUserBuffer !== "function") return undefined;
    const [kBuffer, kBufferCb, kBufferGen] = keys;
    const reads = new NodeOwnReads(wanted, deliver);
    const first = reads.#next();
    s[kBuffer!] = first;
    s[kBufferCb!] = (n: number, buffer: Uint8Array) => reads.#read(n, buffer);
    s[kBufferGen!] = () => reads.#next();
    handle.useUserBuffer(first);
    return reads;
  }

  #next(): Uint8Array {
    const wanted = this.#wanted;
    let bulk = this.#bulk;
    if (wanted >= BULK_READ_MIN_BYTES) bulk ??= this.#bulk = new Uint8Array(BULK_READ_BYTES);
    else if (wanted === 0) bulk = this.#bulk = undefined; // an idle read keeps no large buffer
    this.#inBulk = bulk !== undefined;
    if (bulk === undefined) return this.#small ??= new Uint8Array(SMALL_READ_BYTES);
    return wanted < bulk.length ? bulk.subarray(0, wanted) : bulk;
  }

  #read(n: number, buffer: Uint8Array): void {
    const inBulk = this.#inBulk;
    const given = this.#deliver(
      inBulk ? new Uint8Array(buffer.buffer, buffer.byteOffset, n) : buffer.slice(0, n),
    );
    if (typeof given === "number") this.#wanted = given;
    else {
      if (inBulk) this.#bulk = undefined; // kept: that buffer is the receiver's now
      this.#wanted = 0;
    }
  }
}
