/**
 * {@linkcode FrameBatch}: received messages handed out as the bytes they arrived in, with no view
 * per message, and sent on as those bytes (see `IoCore.takeFrames` and `IoCore.sendFrames`).
 *
 * @module
 */
import { putBytes } from "./bytes.ts";
import { FRAME_HEADER_BYTES, frameView, readFrameLength } from "./codec.ts";

/** Visits one message of a batch: its payload is `buf[offset, offset + length)`. */
export type FrameVisitor = (buf: Uint8Array, offset: number, length: number) => void;

/** Calls `visit` for every frame of `runs` (whole frames back to back, headers included). */
export function forEachFrame(runs: readonly Uint8Array[], visit: FrameVisitor): void {
  for (let r = 0; r < runs.length; r++) {
    const run = runs[r]!;
    const view = frameView(run);
    const end = run.length;
    for (let at = 0; at < end;) {
      const length = readFrameLength(view, at);
      visit(run, at + FRAME_HEADER_BYTES, length);
      at += FRAME_HEADER_BYTES + length;
    }
  }
}

/**
 * True when the headers of `runs` still frame exactly `count` messages that end where each run
 * ends: a batch whose headers were written into cannot break its receiver's framing.
 */
function framesIntact(runs: readonly Uint8Array[], count: number): boolean {
  let frames = 0;
  for (let r = 0; r < runs.length; r++) {
    const run = runs[r]!;
    const view = frameView(run);
    let at = 0;
    while (at < run.length) {
      if (run.length - at < FRAME_HEADER_BYTES) return false;
      at += FRAME_HEADER_BYTES + readFrameLength(view, at);
      frames++;
    }
    if (at !== run.length) return false;
  }
  return frames === count;
}

/** The payloads of `runs`, one view each. */
export function payloadViews(runs: readonly Uint8Array[]): Uint8Array[] {
  const views: Uint8Array[] = [];
  for (let r = 0; r < runs.length; r++) pushPayloadViews(views, runs[r]!, 0);
  return views;
}

/**
 * True on JavaScriptCore (Bun), where a fresh small `Uint8Array` and a copy into it cost about half a
 * view of a shared buffer (26 against 50 ns for 32 bytes, the view's share of the collector
 * included); on V8 (Deno, Node) the copy costs ten times the view.
 */
export const SMALL_COPIES_BEAT_VIEWS = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";

/**
 * Appends a view of each payload of `run` (whole frames back to back), from byte `from` on, to
 * `views`; payloads shorter than `copyBelow` bytes are copied instead (for a reader that copies them
 * on anyway, where {@linkcode SMALL_COPIES_BEAT_VIEWS}). Returns true when every one was copied.
 */
export function pushPayloadViews(views: Uint8Array[], run: Uint8Array, from: number, copyBelow = 0): boolean {
  // `new Uint8Array(buffer, …)` costs about two thirds of `subarray` on V8, which dominates here.
  const buffer = run.buffer;
  const base = run.byteOffset + FRAME_HEADER_BYTES;
  const view = frameView(run);
  let copied = true;
  for (let at = from, end = run.length; at < end;) {
    const length = readFrameLength(view, at);
    if (length < copyBelow) views.push(copyOf(run, at + FRAME_HEADER_BYTES, length));
    else {
      views.push(new Uint8Array(buffer, base + at, length));
      copied = false;
    }
    at += FRAME_HEADER_BYTES + length;
  }
  return copied;
}

/** A copy of `source[start, start + length)` (`slice` costs more for a few dozen bytes). */
function copyOf(source: Uint8Array, start: number, length: number): Uint8Array {
  const copy = new Uint8Array(length);
  putBytes(copy, 0, source, start, length);
  return copy;
}

/** Makes batches; only the core holds it. */
let create: (owner: object, runs: readonly Uint8Array[], count: number, byteLength: number) => FrameBatch;
/** The runs of a batch `owner` made and nobody sent yet; otherwise throws a `TypeError`. */
let runsOf: (batch: unknown, owner: object, action: string) => readonly Uint8Array[];
/** Marks a batch as sent. */
let markSent: (batch: FrameBatch) => void;

/**
 * Messages received from one client, as the bytes they arrived in: frames with their 8-byte
 * headers, in one or more runs (one per read, and one per message that spanned reads). Creating one
 * allocates nothing per message. Only the core makes batches (`IoCore.takeFrames`, or
 * `InlineProcessor.onFramesReceived`), and `IoCore.sendFrames` sends only those, once.
 *
 * A batch holds the read buffers its frames lie in: while you keep it, they are not freed or reused
 * (a kept 30-byte message may pin a 64 KiB read buffer). Its payload bytes may be changed in place
 * before the batch is sent, never after. Nothing outside the payloads may be changed: `sendFrames`
 * checks the frame headers and refuses a batch whose headers no longer frame its messages.
 *
 * @example Sum the payload bytes of a batch, then echo it
 * ```ts
 * import { IoCore } from "@asockio/core";
 * declare const core: IoCore;
 * declare const id: number;
 * const batch = core.takeFrames(id);
 * if (batch) {
 *   let sum = 0;
 *   batch.forEach((buf, offset, length) => {
 *     for (let i = offset; i < offset + length; i++) sum += buf[i]!;
 *   });
 *   core.sendFrames(id, batch);
 * }
 * ```
 */
export class FrameBatch implements Iterable<Uint8Array> {
  readonly #owner: object;
  readonly #runs: readonly Uint8Array[];
  #sent = false;
  /** The number of messages. */
  readonly count: number;
  /** Their bytes as received: the payloads and an 8-byte header each. */
  readonly byteLength: number;

  static {
    create = (owner, runs, count, byteLength) => new FrameBatch(owner, runs, count, byteLength);
    runsOf = (batch, owner, action) => {
      if (typeof batch !== "object" || batch === null || !(#runs in batch) || batch.#owner !== owner) {
        throw new TypeError(`Cannot ${action}: the batch was not made by this core's takeFrames`);
      }
      if (batch.#sent) throw new TypeError(`Cannot ${action}: the batch was sent already`);
      if (!framesIntact(batch.#runs, batch.count)) {
        throw new TypeError(
          `Cannot ${action}: the batch's frame headers were changed (only payloads may be)`,
        );
      }
      return batch.#runs;
    };
    markSent = (batch) => {
      batch.#sent = true;
    };
  }

  private constructor(owner: object, runs: readonly Uint8Array[], count: number, byteLength: number) {
    this.#owner = owner;
    this.#runs = runs;
    this.count = count;
    this.byteLength = byteLength;
  }

  /**
   * Visits each message in order, without creating a view: its payload is
   * `buf[offset, offset + length)`.
   *
   * @param visit Called once per message.
   *
   * @example
   * ```ts
   * import type { FrameBatch } from "@asockio/core";
   * declare const batch: FrameBatch;
   * batch.forEach((buf, offset, length) => console.log(buf[offset], length));
   * ```
   */
  forEach(visit: FrameVisitor): void {
    forEachFrame(this.#runs, visit);
  }

  /**
   * Yields each payload as its own view (one allocation per message, as `getMessagesFromClient`).
   *
   * @example
   * ```ts
   * import type { FrameBatch } from "@asockio/core";
   * declare const batch: FrameBatch;
   * for (const message of batch) console.log(message.length);
   * ```
   */
  *[Symbol.iterator](): Iterator<Uint8Array> {
    const runs = this.#runs;
    for (let r = 0; r < runs.length; r++) {
      const run = runs[r]!;
      const view = frameView(run);
      for (let at = 0; at < run.length;) {
        const length = readFrameLength(view, at);
        at += FRAME_HEADER_BYTES;
        yield run.subarray(at, at + length);
        at += length;
      }
    }
  }
}

/**
 * Makes a batch of `owner`'s (the core's memory budget, which counts its bytes). Internal.
 */
export function createFrameBatch(
  owner: object,
  runs: readonly Uint8Array[],
  count: number,
  byteLength: number,
): FrameBatch {
  return create(owner, runs, count, byteLength);
}

/**
 * The runs of `batch` when `owner` made it and it was not sent yet. Internal.
 *
 * @throws {TypeError} For anything else: a forged batch, another core's, or one already sent.
 */
export function frameBatchRuns(batch: unknown, owner: object, action: string): readonly Uint8Array[] {
  return runsOf(batch, owner, action);
}

/**
 * Marks `batch` as sent: {@linkcode frameBatchRuns} refuses it from now on. Internal.
 */
export function frameBatchSent(batch: FrameBatch): void {
  markSent(batch);
}
