/**
 * The framing codec: each message travels as an 8-byte little-endian unsigned length followed by
 * the payload (the wire format of the Python original, FI-ASockIOCore). A zero-length message is
 * valid; a declared length may be anything up to 2^64−1, and the decoder refuses what exceeds its
 * `maxMessageBytes` before allocating for it.
 *
 * The codec does no I/O and touches no runtime globals.
 *
 * @example Encode a batch and decode it from arbitrary chunks
 * ```ts
 * import { encodeFrames, FrameDecoder } from "@asockio/core/codec";
 * const wire = encodeFrames([new Uint8Array([1, 2]), new Uint8Array(0)]);
 * const decoder = new FrameDecoder();
 * decoder.push(wire.subarray(0, 5));
 * decoder.push(wire.subarray(5));
 * for (let msg = decoder.next(); msg !== undefined; msg = decoder.next()) console.log(msg);
 * ```
 *
 * @module
 */
export { FRAME_HEADER_BYTES, frameView, readFrameLength, writeFrameHeader } from "./frame_header.ts";
export {
  encodeFrame,
  encodeFrames,
  encodeFramesInto,
  framedLength,
  framedRunBytes,
  framedRunEnd,
} from "./encode.ts";
export { DEFAULT_MAX_MESSAGE_BYTES, FrameDecoder, type FrameDecoderOptions } from "./decode.ts";
