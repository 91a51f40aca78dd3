/**
 * {@linkcode packWebSocketFrames}: the session's output frames rewritten as server WebSocket frames,
 * many small messages packed into one buffer. No I/O.
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
import { WebSocketOpcode } from "./websocket_frames.ts";

/**
 * Rewrites the session's frames (an 8-byte little-endian length, then the payload) that start `chunk`
 * at `from` as unmasked binary WebSocket frames, packed into one buffer: one write of many small
 * messages instead of a header and a view each. It stops before a frame that is not whole in
 * `chunk`, whose payload is `maxPayload` bytes or more (at most 65,535: each header then shrinks), or
 * whose length is `stopAt`.
 *
 * @returns The packed frames and where the first frame not packed starts; `undefined` when none was.
 */
export function packWebSocketFrames(
  chunk: Uint8Array,
  from: number,
  maxPayload: number,
  stopAt = -1,
): { frames: Uint8Array; end: number } | undefined {
  let out: Uint8Array | undefined;
  let p = 0;
  let at = from;
  while (at + 8 <= chunk.length) {
    if ((chunk[at + 3]! | chunk[at + 4]! | chunk[at + 5]! | chunk[at + 6]! | chunk[at + 7]!) !== 0) break;
    const length = chunk[at]! | (chunk[at + 1]! << 8) | (chunk[at + 2]! << 16);
    const start = at + 8;
    if (length >= maxPayload || length === stopAt || start + length > chunk.length) break;
    out ??= reserveArena(chunk.length - from);
    out[p++] = 0x80 | WebSocketOpcode.binary;
    if (length < 126) out[p++] = length;
    else {
      out[p++] = 126;
      out[p++] = length >>> 8;
      out[p++] = length & 0xff;
    }
    if (length <= 64) { for (let i = start; i < start + length; i++) out[p++] = chunk[i]!; }
    else {
      out.set(chunk.subarray(start, start + length), p);
      p += length;
    }
    at = start + length;
  }
  return out === undefined ? undefined : { frames: trimArena(out, p), end: at };
}
