/**
 * Decoding: {@linkcode FrameDecoder} turns a byte stream, cut anywhere, into messages (see `codec.ts`).
 *
 * @module
 */
import { assertBytes, concatBytes } from "./bytes.ts";
import { MessageTooLargeError } from "../errors.ts";
import {
  COPY_FRAME_BYTES,
  copyAbove,
  copyFrame,
  FRAME_HEADER_BYTES,
  frameView,
  peekHeader,
  putHeader,
  readFrameLength,
  SMALL_COPY,
  TWO_POW_32,
} from "./frame_header.ts";
import {
  checkDecoderOptions,
  checkedLimit,
  DEFAULT_MAX_MESSAGE_BYTES,
  type FrameDecoderOptions,
} from "./decode_options.ts";

export { DEFAULT_MAX_MESSAGE_BYTES, type FrameDecoderOptions };

/** A shared placeholder for an empty chunk slot; it has no bytes, so sharing it is safe. */
const NO_BYTES = new Uint8Array(0);
/** Marks `#partial` while a streamed frame's payload is being taken: it has no bytes to fill. */
const STREAMING = new Uint8Array(0);

/**
 * Turns a byte stream, cut into chunks anywhere, back into messages.
 *
 * Chunks pushed in become the decoder's (it may hand out views of them), so the caller must not
 * modify a chunk after pushing it. A message that lies inside one chunk is returned as a view of
 * that chunk (after {@linkcode FrameDecoder.copyLargeFrames}, one of 16 KiB or more in a read buffer
 * of 128 KiB or more is copied, so as not to pin that buffer); a message spanning chunks is copied into one buffer of its frame's exact size (its header
 * rebuilt in front), allocated once when its header is complete.
 *
 * When a frame declares more than `maxMessageBytes`, {@linkcode FrameDecoder.next} throws a
 * `MessageTooLargeError` and the decoder is finished: every later call to `push`, `next` or
 * `takeBuffered` throws that same error. It releases the chunks it held, but `bufferedBytes` goes on
 * counting their bytes (pushed, never returned), so a caller's byte accounting still balances.
 *
 * @example Feed chunks, drain messages
 * ```ts
 * import { encodeFrames, FrameDecoder } from "@asockio/core/codec";
 * const decoder = new FrameDecoder({ maxMessageBytes: 1024 });
 * const wire = encodeFrames([new Uint8Array([1, 2, 3])]);
 * for (const byte of wire) decoder.push(new Uint8Array([byte]));
 * console.log(decoder.next()); // Uint8Array(3) [ 1, 2, 3 ]
 * console.log(decoder.next()); // undefined
 * ```
 */
export class FrameDecoder {
  readonly #max: number;
  /** The length over which the slow path looks at a header: `#max`, or the stream threshold if lower. */
  #limit = 0;
  #threshold: number | undefined = undefined;
  readonly #maxStreamed: number;
  /** The declared length of the frame being streamed, and how much of it is still to be taken. */
  #streamLength = 0;
  #streamLeft = 0;
  /** The chunk being read, and the read position in it. Exhausted only while the ring is empty. */
  #cur: Uint8Array = NO_BYTES;
  /** A view of `#cur` for reading headers, made when first needed. */
  #curView: DataView | undefined = undefined;
  #pos = 0;
  /** Chunks after `#cur`, in a ring whose capacity is a power of two, so steady state allocates nothing. */
  #ring: Uint8Array[] = [NO_BYTES, NO_BYTES, NO_BYTES, NO_BYTES, NO_BYTES, NO_BYTES, NO_BYTES, NO_BYTES];
  #ringHead = 0;
  #ringCount = 0;
  /** Unread bytes in `#cur` and the ring. */
  #queued = 0;
  /** The buffer of a frame spanning chunks (its header, then its payload), and how much of it is filled. */
  #partial: Uint8Array | undefined = undefined;
  #filled = 0;
  /** The header of a frame crossing chunks, as `peekHeader` read it. */
  readonly #header = { lo: 0, hi: 0 };
  /** How many views of pushed chunks were handed out (see {@linkcode lentViews}). */
  #lent = 0;
  /** Large frames are copied out of large buffers (see {@linkcode copyLargeFrames}). */
  #copyBig = false;
  #error: MessageTooLargeError | undefined = undefined;
  #takenFrames = 0;

  /**
   * Creates an empty decoder.
   *
   * @param options The limits; see {@linkcode FrameDecoderOptions}.
   * @throws {TypeError} When `options` is not an object, names an unknown option, or `maxMessageBytes`
   * is not a number.
   * @throws {RangeError} When `maxMessageBytes` is not an integer in [0, 2^53−1].
   */
  constructor(options?: FrameDecoderOptions) {
    const checked = checkDecoderOptions(options);
    this.#max = checked.maxMessageBytes;
    this.#maxStreamed = checked.maxStreamedMessageBytes;
    this.setStreamThreshold(options?.streamThresholdBytes);
  }

  /**
   * Sets or (`undefined`) removes the `streamThresholdBytes`; a frame being streamed goes on.
   * @throws {RangeError} When `threshold` is not an integer in [0, 2^53−1].
   */
  setStreamThreshold(threshold: number | undefined): void {
    this.#threshold = checkedLimit(threshold, "streamThresholdBytes");
    this.#limit = this.#threshold === undefined || this.#threshold > this.#max ? this.#max : this.#threshold;
  }

  /** The declared length of the frame whose payload is being streamed, or 0 when none is. */
  get streamByteLength(): number {
    return this.#streamLength;
  }

  /** Bytes of the streamed frame not taken yet (arrived or not), or 0 when none is streamed. */
  get streamRemainingBytes(): number {
    return this.#streamLeft;
  }

  /**
   * Takes the next piece of the streamed frame's payload that has arrived, as a view of a pushed
   * chunk (nothing is copied); once the last byte is taken, decoding goes on with the next frame.
   * @param lent `false` when the caller copies the piece before the chunk is given back (see `lentViews`).
   * @returns A view, or `undefined` when nothing of the stream is buffered (or none is streamed).
   * @example
   * ```ts
   * import { encodeFrame, FrameDecoder } from "@asockio/core/codec";
   * const decoder = new FrameDecoder({ streamThresholdBytes: 0 });
   * decoder.push(encodeFrame(new Uint8Array([1, 2, 3])));
   * decoder.next();
   * console.log(decoder.takeStreamBytes()); // Uint8Array(3) [ 1, 2, 3 ]
   * ```
   */
  takeStreamBytes(lent = true): Uint8Array | undefined {
    const left = this.#streamLeft;
    if (left === 0 || this.#queued === 0) return undefined;
    const cur = this.#cur;
    const pos = this.#pos;
    const avail = cur.length - pos;
    const take = avail < left ? avail : left;
    const piece = pos === 0 && take === cur.length ? cur : cur.subarray(pos, pos + take);
    if (lent) this.#lent++;
    this.#queued -= take;
    if (take === avail) this.#shift();
    else this.#pos = pos + take;
    this.#streamLeft = left - take;
    if (left === take) {
      this.#partial = undefined;
      this.#streamLength = 0;
    }
    return piece;
  }

  /** A frame over `#limit`: it starts a stream, or the decoder fails. */
  #oversize(hi: number, lo: number): void {
    const length = hi * TWO_POW_32 + lo;
    const threshold = this.#threshold;
    if (threshold === undefined || length <= threshold) return this.#fail(hi, lo, this.#max);
    if (length > this.#maxStreamed) return this.#fail(hi, lo, this.#maxStreamed);
    this.#consume(FRAME_HEADER_BYTES, undefined, 0);
    this.#partial = STREAMING;
    this.#filled = 0;
    this.#streamLength = length;
    this.#streamLeft = length;
  }

  /**
   * The largest payload this decoder accepts.
   *
   * @example
   * ```ts
   * import { FrameDecoder } from "@asockio/core/codec";
   * console.log(new FrameDecoder().maxMessageBytes); // 67108864
   * ```
   */
  get maxMessageBytes(): number {
    return this.#max;
  }

  /**
   * Bytes pushed and not yet returned by {@linkcode next}, a partly received frame included.
   *
   * @example
   * ```ts
   * import { FrameDecoder } from "@asockio/core/codec";
   * const decoder = new FrameDecoder();
   * decoder.push(new Uint8Array([5, 0, 0]));
   * console.log(decoder.bufferedBytes); // 3
   * ```
   */
  get bufferedBytes(): number {
    return this.#partial === undefined ? this.#queued : this.#queued + this.#filled;
  }

  /**
   * Queues a chunk. The chunk now belongs to the decoder: do not modify it afterwards.
   *
   * @param chunk Bytes as they arrived, cut anywhere.
   * @throws {MessageTooLargeError} When the decoder already failed (see the class doc).
   * @throws {TypeError} When `chunk` is not a `Uint8Array`.
   *
   * @example
   * ```ts
   * import { FrameDecoder } from "@asockio/core/codec";
   * const decoder = new FrameDecoder();
   * decoder.push(new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0]));
   * console.log(decoder.next()); // Uint8Array(0) []
   * ```
   */
  push(chunk: Uint8Array): void {
    if (this.#error !== undefined) throw this.#error;
    assertBytes(chunk, "chunk", "decode frames");
    const n = chunk.length;
    if (n === 0) return;
    if (this.#pos === this.#cur.length) {
      // `#cur` is exhausted, so the ring is empty too: the chunk becomes the one being read.
      this.#cur = chunk;
      this.#curView = undefined;
      this.#pos = 0;
    } else {
      let ring = this.#ring;
      if (this.#ringCount === ring.length) ring = this.#growRing();
      ring[(this.#ringHead + this.#ringCount) & (ring.length - 1)] = chunk;
      this.#ringCount++;
    }
    this.#queued += n;
  }

  /**
   * The bytes still missing of a large frame being received (one spanning chunks, assembled in its
   * own buffer), or 0 when there is none. {@linkcode absorb} takes chunks of up to this size.
   *
   * @example
   * ```ts
   * import { encodeFrame, FrameDecoder } from "@asockio/core/codec";
   * const decoder = new FrameDecoder();
   * decoder.push(encodeFrame(new Uint8Array(1000)).slice(0, 108));
   * decoder.next(); // undefined: 900 bytes are missing
   * console.log(decoder.partialFrameMissingBytes); // 900
   * ```
   */
  get partialFrameMissingBytes(): number {
    const partial = this.#partial;
    return partial === undefined ? 0 : partial.length - this.#filled;
  }

  /**
   * Takes `chunk` by copying it, when it belongs entirely to a large frame already being received
   * (one spanning chunks, which is assembled in its own buffer anyway) and nothing else is queued.
   * The decoder then keeps no reference to `chunk`, so its memory may be reused for the next read.
   * Otherwise does nothing and returns `false`: {@linkcode push} it instead.
   *
   * @param chunk The bytes that arrived next.
   * @returns `true` when the chunk was copied in and may be reused.
   *
   * @example Receive a large message through one reused read buffer
   * ```ts
   * import { encodeFrame, FrameDecoder } from "@asockio/core/codec";
   * const wire = encodeFrame(new Uint8Array(100_000));
   * const decoder = new FrameDecoder();
   * const readBuffer = new Uint8Array(16 * 1024);
   * let message: Uint8Array | undefined;
   * for (let at = 0; at < wire.length; at += readBuffer.length) {
   *   const n = Math.min(readBuffer.length, wire.length - at);
   *   readBuffer.set(wire.subarray(at, at + n));
   *   const chunk = readBuffer.subarray(0, n);
   *   if (!decoder.absorb(chunk)) decoder.push(chunk.slice()); // the buffer is reused: keep a copy
   *   message ??= decoder.next();
   * }
   * console.log(message?.length); // 100000
   * ```
   */
  absorb(chunk: Uint8Array): boolean {
    const partial = this.#partial;
    if (partial === undefined || this.#queued !== 0 || this.#error !== undefined) return false;
    const n = chunk.length;
    if (n > partial.length - this.#filled) return false;
    partial.set(chunk, this.#filled);
    this.#filled += n;
    return true;
  }

  /**
   * Returns the next whole message, or `undefined` when more bytes are needed.
   *
   * @returns The payload without its header: a view of a pushed chunk when the frame lay inside
   *   one, otherwise a view of a new buffer. Either way the 8 bytes before it in its buffer are its
   *   header, so the whole frame can be sent on as it came.
   * @throws {MessageTooLargeError} When the next frame declares more than `maxMessageBytes`, and on
   *   every call after that.
   *
   * @example Drain everything available
   * ```ts
   * import { encodeFrames, FrameDecoder } from "@asockio/core/codec";
   * const decoder = new FrameDecoder();
   * decoder.push(encodeFrames([new Uint8Array([1]), new Uint8Array([2])]));
   * for (let msg = decoder.next(); msg !== undefined; msg = decoder.next()) console.log(msg);
   * ```
   */
  next(): Uint8Array | undefined {
    if (this.#error !== undefined) throw this.#error;
    if (this.#partial !== undefined) return this.#fillPartial();
    if (this.#queued < FRAME_HEADER_BYTES) return undefined;
    const cur = this.#cur;
    const pos = this.#pos;
    const end = cur.length;
    if (end - pos < FRAME_HEADER_BYTES) return this.#nextSpanning();
    const view = this.#curView ??= frameView(cur);
    const length = readFrameLength(view, pos);
    if (length > this.#limit) {
      this.#oversize(view.getUint32(pos + 4, true), view.getUint32(pos, true));
      return undefined;
    }
    const start = pos + FRAME_HEADER_BYTES;
    const stop = start + length;
    if (stop > end) return this.#nextSpanning();
    this.#queued -= FRAME_HEADER_BYTES + length;
    if (stop === end) this.#shift();
    else this.#pos = stop;
    // The length first: `copyAbove` reads `cur.buffer`, about 20 ns on V8, too dear per message.
    if (length >= COPY_FRAME_BYTES && length >= copyAbove(cur, this.#copyBig)) {
      return copyFrame(cur, pos, length);
    }
    this.#lent++;
    return new Uint8Array(cur.buffer, cur.byteOffset + start, length);
  }

  /**
   * Appends every whole message that lies inside the chunk being read to `out`, as views, and
   * returns their total payload bytes. It is {@linkcode next} in a loop without the per-call cost,
   * and it never throws: it stops before a frame that crosses into the next chunk, declares more
   * than `maxMessageBytes` or is copied (see the class doc), and leaves it to `next`. It also stops
   * after `maxMessages`.
   *
   * @param out The array to append to.
   * @param maxMessages The most messages to append.
   * @returns The payload bytes appended (their count is how much `out` grew).
   *
   * @example Decode a chunk of many small frames
   * ```ts
   * import { encodeFrames, FrameDecoder } from "@asockio/core/codec";
   * const decoder = new FrameDecoder();
   * decoder.push(encodeFrames([new Uint8Array([1]), new Uint8Array([2, 3])]));
   * const messages: Uint8Array[] = [];
   * console.log(decoder.takeWholeMessages(messages), messages.length); // 3 2
   * ```
   */
  takeWholeMessages(out: Uint8Array[], maxMessages: number = Infinity): number {
    if (this.#error !== undefined || this.#partial !== undefined) return 0;
    const cur = this.#cur;
    const end = cur.length;
    const max = Math.min(this.#limit, copyAbove(cur, this.#copyBig) - 1); // a frame to copy is left to `next`
    // `new Uint8Array(buffer, …)` costs about two thirds of `subarray` on V8, which dominates here.
    const buffer = cur.buffer;
    const base = cur.byteOffset + FRAME_HEADER_BYTES;
    let pos = this.#pos;
    let bytes = 0;
    let taken = 0;
    const view = end - pos >= FRAME_HEADER_BYTES ? this.#curView ??= frameView(cur) : undefined;
    while (end - pos >= FRAME_HEADER_BYTES && taken < maxMessages) {
      const length = readFrameLength(view!, pos);
      const stop = pos + FRAME_HEADER_BYTES + length;
      if (length > max || stop > end) break;
      out.push(new Uint8Array(buffer, base + pos, length));
      bytes += length;
      taken++;
      pos = stop;
    }
    if (taken === 0) return 0;
    this.#lent++;
    this.#queued -= bytes + taken * FRAME_HEADER_BYTES;
    if (pos === end) this.#shift();
    else this.#pos = pos;
    return bytes;
  }

  /**
   * Takes every whole frame that lies inside the chunk being read, as one view of that chunk with
   * the frames' headers: one scan of the headers, and one view per call, not per message. It never
   * throws: it stops before a frame that crosses into the next chunk, declares more than
   * `maxMessageBytes` or is copied (see the class doc), and leaves it to {@linkcode next}.
   *
   * @returns The frames as they arrived, or `undefined` when none is whole; their number is then
   *   {@linkcode takenFrameCount}.
   *
   * @example Take a chunk's frames without a view per message
   * ```ts
   * import { encodeFrames, FrameDecoder } from "@asockio/core/codec";
   * const decoder = new FrameDecoder();
   * decoder.push(encodeFrames([new Uint8Array([1]), new Uint8Array([2, 3])]));
   * const frames = decoder.takeWholeFrames();
   * console.log(frames?.length, decoder.takenFrameCount); // 19 2
   * ```
   */
  takeWholeFrames(): Uint8Array | undefined {
    if (this.#error !== undefined || this.#partial !== undefined) return undefined;
    const cur = this.#cur;
    const end = cur.length;
    const start = this.#pos;
    if (end - start < FRAME_HEADER_BYTES) return undefined;
    const view = this.#curView ??= frameView(cur);
    const max = Math.min(this.#limit, copyAbove(cur, this.#copyBig) - 1); // a frame to copy is left to `next`
    let pos = start;
    let count = 0;
    while (end - pos >= FRAME_HEADER_BYTES) {
      const length = readFrameLength(view, pos);
      const stop = pos + FRAME_HEADER_BYTES + length;
      if (length > max || stop > end) break;
      count++;
      pos = stop;
    }
    if (count === 0) return undefined;
    this.#takenFrames = count;
    this.#lent++;
    this.#queued -= pos - start;
    if (pos === end) this.#shift();
    else this.#pos = pos;
    return start === 0 && pos === end ? cur : cur.subarray(start, pos);
  }

  /**
   * How many frames the last {@linkcode takeWholeFrames} returned.
   *
   * @example
   * ```ts
   * import { encodeFrame, FrameDecoder } from "@asockio/core/codec";
   * const decoder = new FrameDecoder();
   * decoder.push(encodeFrame(new Uint8Array(4)));
   * decoder.takeWholeFrames();
   * console.log(decoder.takenFrameCount); // 1
   * ```
   */
  get takenFrameCount(): number {
    return this.#takenFrames;
  }

  /**
   * Changes each time a view of a pushed chunk is handed out; -1 while pushed bytes are unread. Equal
   * (not -1) before a chunk is pushed and after it was read: nothing refers to it, its memory is free.
   */
  get lentViews(): number {
    return this.#queued === 0 ? this.#lent : -1;
  }

  /** From now on copies frames of 16 KiB or more out of read buffers of 128 KiB or more (class doc). */
  copyLargeFrames(): void {
    this.#copyBig = true;
  }

  /**
   * Removes and returns every unconsumed byte exactly as it arrived, a partly received frame's
   * header and payload included, and leaves the decoder empty. Used when a connection leaves
   * framed mode: the next unread byte is then read raw.
   *
   * @returns The unconsumed bytes (a view of a pushed chunk when they all lie in one).
   * @throws {MessageTooLargeError} When the decoder already failed (see the class doc).
   *
   * @example Switch to raw mode mid-stream
   * ```ts
   * import { encodeFrame, FrameDecoder } from "@asockio/core/codec";
   * const decoder = new FrameDecoder();
   * decoder.push(new Uint8Array([...encodeFrame(new Uint8Array([7])), 0xaa, 0xbb]));
   * decoder.next(); // Uint8Array(1) [ 7 ]
   * console.log(decoder.takeBuffered()); // Uint8Array(2) [ 170, 187 ]
   * ```
   */
  takeBuffered(): Uint8Array {
    if (this.#error !== undefined) throw this.#error;
    const total = this.bufferedBytes;
    this.#lent++;
    const pieces: Uint8Array[] = [];
    const partial = this.#partial;
    if (partial !== undefined) {
      pieces.push(partial.subarray(0, this.#filled));
    }
    const cur = this.#cur;
    if (this.#pos < cur.length) pieces.push(this.#pos === 0 ? cur : cur.subarray(this.#pos));
    const ring = this.#ring;
    const mask = ring.length - 1;
    for (let i = 0; i < this.#ringCount; i++) pieces.push(ring[(this.#ringHead + i) & mask]);
    this.#clear();
    return concatBytes(pieces, total);
  }

  /** Drops every buffered byte and reference to a chunk. */
  #clear(): void {
    this.#cur = NO_BYTES;
    this.#curView = undefined;
    this.#pos = 0;
    this.#ring.fill(NO_BYTES);
    this.#ringHead = 0;
    this.#ringCount = 0;
    this.#queued = 0;
    this.#partial = undefined;
    this.#filled = 0;
    this.#streamLength = 0;
    this.#streamLeft = 0;
  }

  /** Records the failure, releases the chunks (still counting their bytes), and throws. */
  #fail(hi: number, lo: number, max: number): never {
    const unread = this.bufferedBytes;
    this.#clear();
    this.#queued = unread;
    this.#error = new MessageTooLargeError((BigInt(hi) << 32n) | BigInt(lo), max);
    throw this.#error;
  }

  /** Moves to the next queued chunk once `#cur` is exhausted. */
  #shift(): void {
    if (this.#ringCount === 0) {
      this.#cur = NO_BYTES;
      this.#curView = undefined;
    } else {
      const ring = this.#ring;
      const head = this.#ringHead;
      this.#cur = ring[head];
      this.#curView = undefined;
      ring[head] = NO_BYTES;
      this.#ringHead = (head + 1) & (ring.length - 1);
      this.#ringCount--;
    }
    this.#pos = 0;
  }

  /** Doubles the ring, keeping the chunks in order. */
  #growRing(): Uint8Array[] {
    const old = this.#ring;
    const size = old.length;
    const ring: Uint8Array[] = new Array(size * 2);
    for (let i = 0; i < size; i++) ring[i] = old[(this.#ringHead + i) & (size - 1)];
    ring.fill(NO_BYTES, size);
    this.#ring = ring;
    this.#ringHead = 0;
    return ring;
  }

  /** Consumes `n` queued bytes (`n <= #queued`), copying them into `target` at `at` when given. */
  #consume(n: number, target: Uint8Array | undefined, at: number): void {
    this.#queued -= n;
    while (n > 0) {
      const cur = this.#cur;
      const pos = this.#pos;
      const avail = cur.length - pos;
      const take = avail < n ? avail : n;
      if (target !== undefined) {
        if (take <= SMALL_COPY) {
          for (let i = 0; i < take; i++) target[at + i] = cur[pos + i];
        } else {
          target.set(pos === 0 && take === cur.length ? cur : cur.subarray(pos, pos + take), at);
        }
        at += take;
      }
      n -= take;
      if (take === avail) {
        this.#shift();
      } else {
        this.#pos = pos + take;
      }
    }
  }

  /** The slow path: the header or the payload of the next frame crosses a chunk boundary. */
  #nextSpanning(): Uint8Array | undefined {
    const header = peekHeader(this.#cur, this.#pos, this.#ring, this.#ringHead, this.#header);
    const lo = header.lo;
    const hi = header.hi;
    const length = hi * TWO_POW_32 + lo;
    if (length > this.#limit) {
      this.#oversize(hi, lo);
      return undefined;
    }
    // Allocate before consuming, so a failed allocation leaves the decoder as it was. The header is
    // rebuilt in front (a little-endian length has exactly one encoding), so the frame can be sent on.
    const partial = new Uint8Array(FRAME_HEADER_BYTES + length);
    putHeader(partial, 0, length);
    this.#consume(FRAME_HEADER_BYTES, undefined, 0);
    this.#partial = partial;
    this.#filled = FRAME_HEADER_BYTES;
    return this.#fillPartial();
  }

  /** Copies what has arrived of the spanning frame; returns it once complete. */
  #fillPartial(): Uint8Array | undefined {
    const partial = this.#partial as Uint8Array;
    if (partial === STREAMING) return undefined;
    const missing = partial.length - this.#filled;
    const take = missing < this.#queued ? missing : this.#queued;
    this.#consume(take, partial, this.#filled);
    this.#filled += take;
    if (take < missing) return undefined;
    this.#partial = undefined;
    this.#filled = 0;
    return partial.subarray(FRAME_HEADER_BYTES);
  }
}
