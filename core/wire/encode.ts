/**
 * Encoding: messages into frames, one at a time, as a batch into a new buffer or into a given one, and
 * the runs of received frames that can be sent on as they came. `codec.ts` is the public entry.
 *
 * @module
 */
import { allocBytes, assertBytes } from "./bytes.ts";
import { FRAME_HEADER_BYTES, putHeader, readFrameLength, SMALL_COPY } from "./frame_header.ts";

/** Copies `payload` into `target` at `offset`; `target` is known to have room. */
function putPayload(target: Uint8Array, offset: number, payload: Uint8Array): void {
  const n = payload.length;
  if (n <= SMALL_COPY) {
    for (let i = 0; i < n; i++) target[offset + i] = payload[i];
  } else {
    target.set(payload, offset);
  }
}

/**
 * Frames one message: the header and the payload in one buffer, ready for one write.
 *
 * @param payload The message; it is copied.
 * @returns `8 + payload.length` bytes; a small frame is a view of a shared slab (see `allocBytes`).
 * @throws {TypeError} When `payload` is not a `Uint8Array` (encode a string with `TextEncoder`).
 *
 * @example
 * ```ts
 * import { encodeFrame } from "@asockio/core/codec";
 * const frame = encodeFrame(new TextEncoder().encode("hi"));
 * console.log(frame); // Uint8Array(10) [ 2, 0, 0, 0, 0, 0, 0, 0, 104, 105 ]
 * ```
 */
export function encodeFrame(payload: Uint8Array): Uint8Array {
  assertBytes(payload, "payload", "encode frame");
  const n = payload.length;
  const out = allocBytes(FRAME_HEADER_BYTES + n);
  putHeader(out, 0, n);
  putPayload(out, FRAME_HEADER_BYTES, payload);
  return out;
}

/**
 * The number of bytes {@linkcode encodeFrames} produces for `payloads`.
 *
 * @param payloads The messages.
 * @returns The sum of `8 + payload.length` over all of them.
 * @throws {TypeError} When `payloads` is not an array of `Uint8Array`.
 *
 * @example Size a buffer for a batch
 * ```ts
 * import { framedLength } from "@asockio/core/codec";
 * console.log(framedLength([new Uint8Array(3), new Uint8Array(0)])); // 19
 * ```
 */
export function framedLength(payloads: readonly Uint8Array[]): number {
  if (!Array.isArray(payloads)) {
    throw new TypeError(
      `Cannot encode frames: payloads must be an array of Uint8Array, got ${typeof payloads}`,
    );
  }
  for (let i = 0; i < payloads.length; i++) {
    const payload = payloads[i];
    // The name is made only for the error.
    if (!(payload instanceof Uint8Array)) assertBytes(payload, `payloads[${i}]`, "encode frames");
  }
  return framedLengthUnchecked(payloads);
}

/**
 * {@linkcode framedLength} without the argument checks, for the core's output queues, whose items
 * were checked when queued: the checks cost about 5 % of a round trip there.
 */
export function framedLengthUnchecked(payloads: readonly Uint8Array[]): number {
  const count = payloads.length;
  let total = count * FRAME_HEADER_BYTES;
  for (let i = 0; i < count; i++) total += payloads[i]!.length;
  return total;
}

/**
 * Frames a whole batch into `target` at `offset`, with no allocation. Nothing is written unless
 * the whole batch fits.
 *
 * @param target The buffer to write into.
 * @param offset Where the first frame starts.
 * @param payloads The messages, in order.
 * @returns The offset just past the last frame.
 * @throws {RangeError} When the batch does not fit in `target` from `offset`.
 *
 * @example Append frames to a buffer
 * ```ts
 * import { encodeFramesInto, framedLength } from "@asockio/core/codec";
 * const batch = [new Uint8Array([1]), new Uint8Array([2, 3])];
 * const out = new Uint8Array(framedLength(batch));
 * const end = encodeFramesInto(out, 0, batch); // end === out.length
 * ```
 */
export function encodeFramesInto(
  target: Uint8Array,
  offset: number,
  payloads: readonly Uint8Array[],
): number {
  const total = framedLength(payloads);
  if (!Number.isInteger(offset) || offset < 0 || offset + total > target.length) {
    throw new RangeError(
      `Cannot encode frames: ${total} bytes do not fit at offset ${offset} in a ${target.length}-byte target`,
    );
  }
  return writeFramesUnchecked(target, offset, payloads);
}

/** Writes the frames of checked payloads that fit into `target` from `at`; returns the end. */
export function writeFramesUnchecked(
  target: Uint8Array,
  at: number,
  payloads: readonly Uint8Array[],
): number {
  const count = payloads.length;
  for (let i = 0; i < count; i++) {
    const payload = payloads[i];
    const n = payload.length;
    putHeader(target, at, n);
    at += FRAME_HEADER_BYTES;
    putPayload(target, at, payload);
    at += n;
  }
  return at;
}

/**
 * Finds how far the messages from `payloads[from]` on are consecutive frames of one buffer, each
 * still preceded by its own header, as {@linkcode FrameDecoder} hands out the messages of one chunk.
 * Such a run can be sent on as it is, with no copy: see {@linkcode framedRunBytes}.
 *
 * @param payloads The messages, in order.
 * @param from The index the run starts at.
 * @returns The index just past the run; `from` itself when `payloads[from]` has no header before it.
 *
 * @example Forward what was received without re-encoding it
 * ```ts
 * import { encodeFrames, FrameDecoder, framedRunBytes, framedRunEnd } from "@asockio/core/codec";
 * const received = encodeFrames([new Uint8Array([1]), new Uint8Array([2, 3])]);
 * const decoder = new FrameDecoder();
 * decoder.push(received);
 * const messages: Uint8Array[] = [];
 * decoder.takeWholeMessages(messages);
 * const end = framedRunEnd(messages, 0); // 2
 * console.log(framedRunBytes(messages, 0, end).length === received.length); // true
 * ```
 */
export function framedRunEnd(payloads: readonly Uint8Array[], from: number): number {
  const count = payloads.length;
  if (from >= count) return from;
  const first = payloads[from];
  let at = first.byteOffset - FRAME_HEADER_BYTES;
  // `.buffer` costs about 20 ns on V8 (a builtin call): read only where a header may lie before.
  if (at < 0) return from;
  const buffer = first.buffer;
  const view = new DataView(buffer);
  if (readFrameLength(view, at) !== first.length) return from;
  at += FRAME_HEADER_BYTES + first.length;
  let i = from + 1;
  for (; i < count; i++) {
    const payload = payloads[i];
    const n = payload.length;
    if (payload.byteOffset !== at + FRAME_HEADER_BYTES || payload.buffer !== buffer) break;
    if (readFrameLength(view, at) !== n) break;
    at += FRAME_HEADER_BYTES + n;
  }
  return i;
}

/**
 * The frames of a run found by {@linkcode framedRunEnd}, as one view of their buffer (no copy).
 *
 * @param payloads The messages.
 * @param from The run's first index.
 * @param end The index just past the run, as `framedRunEnd` returned it (greater than `from`).
 * @returns The view from the first frame's header to the last frame's end.
 *
 * @example
 * ```ts
 * import { encodeFrame, framedRunBytes } from "@asockio/core/codec";
 * const frame = encodeFrame(new Uint8Array([9]));
 * console.log(framedRunBytes([frame.subarray(8)], 0, 1)); // Uint8Array(9) [ 1, 0, 0, 0, 0, 0, 0, 0, 9 ]
 * ```
 */
export function framedRunBytes(payloads: readonly Uint8Array[], from: number, end: number): Uint8Array {
  const first = payloads[from];
  const last = payloads[end - 1];
  const start = first.byteOffset - FRAME_HEADER_BYTES;
  return new Uint8Array(first.buffer, start, last.byteOffset + last.length - start);
}

/**
 * Frames a whole batch into one new buffer, so a burst of messages costs one allocation and one
 * write.
 *
 * @param payloads The messages, in order; they are copied.
 * @returns The frames back to back; a small batch is a view of a shared slab (see `allocBytes`).
 * @throws {TypeError} When `payloads` is not an array of `Uint8Array`.
 *
 * @example
 * ```ts
 * import { encodeFrames } from "@asockio/core/codec";
 * const wire = encodeFrames([new Uint8Array([1]), new Uint8Array(0)]);
 * console.log(wire.length); // 17
 * ```
 */
export function encodeFrames(payloads: readonly Uint8Array[]): Uint8Array {
  framedLength(payloads); // the checks
  return encodeFramesUnchecked(payloads);
}

/** {@linkcode encodeFrames} without the argument checks, for the core's checked output queues. */
export function encodeFramesUnchecked(payloads: readonly Uint8Array[]): Uint8Array {
  const out = allocBytes(framedLengthUnchecked(payloads));
  writeFramesUnchecked(out, 0, payloads);
  return out;
}
