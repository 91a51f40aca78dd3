/**
 * {@linkcode FrameDecoderOptions}: the limits of a `FrameDecoder`, and their checks.
 *
 * @module
 */

/** The decoder's default `maxMessageBytes`: 64 MiB. */
export const DEFAULT_MAX_MESSAGE_BYTES: number = 64 * 1024 * 1024;

/** Options for {@linkcode FrameDecoder}. */
export interface FrameDecoderOptions {
  /**
   * The largest payload accepted, an integer in [0, 2^53−1]. A frame declaring more makes the
   * decoder throw `MessageTooLargeError` before anything is allocated for it. A spanning message's
   * buffer is allocated as soon as its header arrives, so this also bounds what one header can make
   * the decoder allocate.
   * @default {67108864}
   */
  maxMessageBytes?: number;
  /**
   * A frame declaring more than this many bytes is not assembled: {@linkcode FrameDecoder.next}
   * consumes its header and returns `undefined`, and its payload is then taken as it arrives with
   * {@linkcode FrameDecoder.takeStreamBytes}. Unset: every frame is whole.
   * @default {undefined}
   */
  streamThresholdBytes?: number;
  /**
   * The largest streamed payload accepted; a frame over `streamThresholdBytes` declaring more makes
   * the decoder throw `MessageTooLargeError`.
   * @default {9007199254740991}
   */
  maxStreamedMessageBytes?: number;
}

/** Checks an optional limit: an integer in [0, 2^53−1]. */
export function checkedLimit(value: number | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`Cannot configure FrameDecoder: ${name} ${value} is not an integer in [0, 2^53-1]`);
  }
  return value;
}
