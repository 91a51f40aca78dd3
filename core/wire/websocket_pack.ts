/**
 * {@linkcode packWebSocketFrames} and {@linkcode packWebSocketMessages}: the session's output (its
 * frames, or its payloads before framing) written as server WebSocket frames, many small messages
 * packed into one buffer. No I/O.
 *
 * @example
 * ```ts
 * import { packWebSocketFrames } from "./websocket_pack.ts";
 * const framed = new Uint8Array([2, 0, 0, 0, 0, 0, 0, 0, 0x4f, 0x4b]); // "OK" behind its 8-byte length
 * console.log(packWebSocketFrames(framed, 0, 16384)?.frames); // Uint8Array [130, 2, 79, 75]
 * ```
 *
 * @module
 */
import { reserveArena, trimArena } from "./_byte_arena.ts";
import { putBytes } from "./bytes.ts";
import { webSocketHeader, WebSocketOpcode } from "./websocket_frames.ts";

/**
 * A buffer to pack output into that no transport holds, shared by every connection: made once a
 * write was taken whole at once, dropped with one that was not. Where writes complete later (Deno,
 * Node) there is none, and output is packed into the arena.
 */
let spare: Uint8Array | undefined;
const SPARE_BYTES = 64 * 1024;

/**
 * Takes the spare packing buffer, if there is one: the caller owns it until it gives it back.
 *
 * @example
 * ```ts
 * import { returnSpareBuffer, takeSpareBuffer } from "./websocket_pack.ts";
 * returnSpareBuffer(takeSpareBuffer()); // a write was taken whole: the next one may pack into it
 * ```
 */
export function takeSpareBuffer(): Uint8Array | undefined {
  const buffer = spare;
  spare = undefined;
  return buffer;
}

/** Makes `buffer` (a new one when `undefined`) the spare: nothing written from it is held anymore. */
export function returnSpareBuffer(buffer: Uint8Array | undefined): void {
  spare = buffer ?? new Uint8Array(SPARE_BYTES);
}

/**
 * Rewrites the session's frames (an 8-byte little-endian length, then the payload) that start `chunk`
 * at `from` as unmasked binary WebSocket frames, packed into one buffer: one write of many small
 * messages instead of a header and a view each. It stops before a frame that is not whole in
 * `chunk`, whose payload is `maxPayload` bytes or more (at most 65,535: each header then shrinks), or
 * whose length is `stopAt`. It packs into `into` when given and large enough for the rest of `chunk`
 * (the caller then knows it used it), else into a buffer reserved from the shared arena.
 *
 * @returns The packed frames and where the first frame not packed starts; `undefined` when none was.
 */
export function packWebSocketFrames(
  chunk: Uint8Array,
  from: number,
  maxPayload: number,
  stopAt = -1,
  into?: Uint8Array,
): { frames: Uint8Array; end: number } | undefined {
  let out: Uint8Array | undefined;
  let p = 0;
  let at = from;
  while (at + 8 <= chunk.length) {
    if ((chunk[at + 3]! | chunk[at + 4]! | chunk[at + 5]! | chunk[at + 6]! | chunk[at + 7]!) !== 0) break;
    const length = chunk[at]! | (chunk[at + 1]! << 8) | (chunk[at + 2]! << 16);
    const start = at + 8;
    if (length >= maxPayload || length === stopAt || start + length > chunk.length) break;
    out ??= into !== undefined && chunk.length - from <= into.length
      ? into
      : reserveArena(chunk.length - from);
    p = putSmallFrame(out, p, chunk, start, length);
    at = start + length;
  }
  return out === undefined ? undefined : { frames: trimArena(out, p), end: at };
}

/**
 * Writes each of `payloads` as one unmasked binary WebSocket frame: those under `maxPayload` bytes
 * (at most 65,535) packed into one buffer, larger ones as they are after a buffer that holds their
 * header. One pass, one copy of each small payload.
 *
 * @param into Where to pack, when the caller has a buffer free and large enough; else a buffer is
 *   reserved from the shared arena.
 * @returns The buffers to write, in order.
 *
 * @example
 * ```ts
 * import { packWebSocketMessages } from "./websocket_pack.ts";
 * console.log(packWebSocketMessages([new Uint8Array([0x4f, 0x4b])], 16384)); // [Uint8Array [130, 2, 79, 75]]
 * ```
 */
export function packWebSocketMessages(
  payloads: readonly Uint8Array[],
  maxPayload: number,
  into?: Uint8Array,
): Uint8Array[] {
  const count = payloads.length;
  let size = 0;
  for (let i = 0; i < count; i++) {
    const length = payloads[i]!.length;
    if (length < maxPayload) size += length + 4; // a header of at most 4 bytes
  }
  const pieces: Uint8Array[] = [];
  const out = into !== undefined && size <= into.length ? into : reserveArena(size);
  let from = 0;
  let p = 0;
  for (let i = 0; i < count; i++) {
    const payload = payloads[i]!;
    const length = payload.length;
    if (length < maxPayload) {
      p = putSmallFrame(out, p, payload, 0, length);
      continue;
    }
    if (p > from) pieces.push(out.subarray(from, p));
    from = p;
    pieces.push(webSocketHeader(WebSocketOpcode.binary, length), payload);
  }
  const used = trimArena(out, p); // its unused end goes back to the arena
  if (p > from) pieces.push(from === 0 ? used : out.subarray(from, p));
  return pieces;
}

/** Writes a binary frame of `source[start, start + length)` (under 65,536 bytes) at `p`; returns its end. */
function putSmallFrame(
  out: Uint8Array,
  p: number,
  source: Uint8Array,
  start: number,
  length: number,
): number {
  out[p++] = 0x80 | WebSocketOpcode.binary;
  if (length < 126) out[p++] = length;
  else {
    out[p++] = 126;
    out[p++] = length >>> 8;
    out[p++] = length & 0xff;
  }
  return putBytes(out, p, source, start, length);
}
