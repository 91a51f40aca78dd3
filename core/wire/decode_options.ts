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

const KNOWN = ["maxMessageBytes", "streamThresholdBytes", "maxStreamedMessageBytes"];

/** The known option sharing the longest prefix with `name` (a typo is most often late in a name). */
function nearest(name: string): string {
  const shared = (known: string) => {
    let n = 0;
    while (n < known.length && known[n] === name[n]) n++;
    return n;
  };
  return KNOWN.reduce((best, known) => shared(known) > shared(best) ? known : best);
}

/**
 * Checks a `FrameDecoder`'s options (an object of known names, each limit an integer in [0, 2^53−1])
 * and fills in the two caps' defaults.
 */
export function checkDecoderOptions(
  options: FrameDecoderOptions | undefined,
): { maxMessageBytes: number; maxStreamedMessageBytes: number } {
  if (options !== undefined) {
    if (typeof options !== "object" || options === null) {
      throw new TypeError(`Cannot create FrameDecoder: options must be an object, got ${options}`);
    }
    for (const name of Object.keys(options)) {
      if (!KNOWN.includes(name)) {
        throw new TypeError(
          `Cannot create FrameDecoder: unknown option ${name}; did you mean ${nearest(name)}?`,
        );
      }
    }
    const max = options.maxMessageBytes;
    if (max !== undefined && typeof max !== "number") {
      throw new TypeError(`Cannot create FrameDecoder: maxMessageBytes must be a number, got ${typeof max}`);
    }
  }
  return {
    maxMessageBytes: checkedLimit(options?.maxMessageBytes, "maxMessageBytes") ?? DEFAULT_MAX_MESSAGE_BYTES,
    maxStreamedMessageBytes: checkedLimit(options?.maxStreamedMessageBytes, "maxStreamedMessageBytes") ??
      Number.MAX_SAFE_INTEGER,
  };
}

/**
 * Only the decoder's caps, out of an object that holds other limits too (the core's resolved limits), and
 * the stream threshold to start with.
 */
export function decoderLimits(
  limits: FrameDecoderOptions,
  streamThresholdBytes?: number,
): FrameDecoderOptions {
  const { maxMessageBytes, maxStreamedMessageBytes } = limits;
  return { maxMessageBytes, maxStreamedMessageBytes, streamThresholdBytes };
}
