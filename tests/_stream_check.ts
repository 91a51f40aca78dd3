/**
 * Seeded randomness and stream checks for the robustness workloads: a generator that gives the same
 * sequence on every runtime, a chunking-independent hash, and a reference frame decoder (the oracle).
 *
 * @module
 */
import { FRAME_HEADER_BYTES } from "../mod.ts";

/**
 * A seeded pseudo-random generator (sfc32 seeded through splitmix32): the same seed and stream
 * always give the same sequence, on every runtime.
 *
 * @example
 * ```ts
 * const rng = new Rng(42, 7); // seed 42, stream 7 (e.g. connection #7)
 * const size = rng.int(100); // 0..99
 * ```
 */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  /** Creates the generator for `seed`; `stream` picks an independent sequence for the same seed. */
  constructor(seed: number, stream = 0) {
    let s = (seed >>> 0) ^ Math.imul((stream >>> 0) + 0x632be5ab, 0x9e3779b1);
    const next = (): number => {
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#a = next();
    this.#b = next();
    this.#c = next();
    this.#d = next();
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    const t0 = (this.#a + this.#b) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    const c = (this.#c << 21) | (this.#c >>> 11);
    this.#d = (this.#d + 1) | 0;
    const t = (t0 + this.#d) | 0;
    this.#c = (c + t) | 0;
    return t >>> 0;
  }

  /** A uniform float in [0, 1). */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** A uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }

  /** A uniform integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.float() < p;
  }

  /** One element of `items`. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  /** `n` random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }
}

/**
 * The FNV-1a 32-bit offset basis: the hash of nothing.
 */
export const FNV_OFFSET = 0x811c9dc5;

/**
 * Folds `bytes` into an FNV-1a 32-bit hash. Chunking does not matter: hashing `a` then `b` equals
 * hashing their concatenation, which is what makes it usable on TCP streams.
 */
export function fnv(hash: number, bytes: Uint8Array): number {
  let h = hash;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
  return h >>> 0;
}

/** Folds a 32-bit length (little-endian) into an FNV-1a hash. */
function fnvLength(hash: number, n: number): number {
  let h = hash;
  h = Math.imul(h ^ (n & 0xff), 0x01000193);
  h = Math.imul(h ^ ((n >>> 8) & 0xff), 0x01000193);
  h = Math.imul(h ^ ((n >>> 16) & 0xff), 0x01000193);
  h = Math.imul(h ^ (n >>> 24), 0x01000193);
  return h >>> 0;
}

/**
 * Folds one whole message (its length, then its bytes) into a hash, so that both the boundaries and
 * the contents of a message sequence are covered.
 */
export function messageHash(hash: number, message: Uint8Array): number {
  return fnv(fnvLength(hash, message.length), message);
}

/**
 * An independent reference decoder of the framing (8-byte little-endian length, then the payload),
 * written for clarity, not speed, so the fuzzer's oracle does not share code with `FrameDecoder`. It
 * keeps only what the oracle compares: how many messages, their hash, and whether the stream became
 * fatal (a declared length above `max`).
 *
 * @example
 * ```ts
 * const ref = new RefDecoder(4096);
 * ref.push(new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0, 42]));
 * console.log(ref.messages, ref.inSync); // 1 true
 * ```
 */
export class RefDecoder {
  /** The largest payload accepted. */
  readonly max: number;
  /** Whole messages decoded so far. */
  messages = 0;
  /** {@linkcode messageHash} over the whole messages, in order. */
  hash: number = FNV_OFFSET;
  /** A header declared more than `max`: nothing after it is decoded. */
  fatal = false;
  /** The payload of the first message, when `keepFirst` was set. */
  first: Uint8Array | undefined = undefined;
  /** How many bytes had been pushed when the first message completed (-1 before that). */
  firstEnd = -1;
  #pushed = 0;
  readonly #keepFirst: boolean;
  readonly #header = new Uint8Array(FRAME_HEADER_BYTES);
  #headerFill = 0;
  #inPayload = false;
  #remaining = 0;
  #pendingHash = 0;
  #firstParts: number[] | undefined = undefined;

  /** Creates a decoder for payloads up to `max` bytes; `keepFirst` records the first payload. */
  constructor(max: number, keepFirst = false) {
    this.max = max;
    this.#keepFirst = keepFirst;
  }

  /** True between frames: no partial header or payload is pending, and the stream is not fatal. */
  get inSync(): boolean {
    return !this.fatal && this.#headerFill === 0 && !this.#inPayload;
  }

  /** Feeds bytes as they would arrive. */
  push(bytes: Uint8Array): void {
    let i = 0;
    const base = this.#pushed;
    this.#pushed += bytes.length;
    while (i < bytes.length && !this.fatal) {
      if (!this.#inPayload) {
        this.#header[this.#headerFill++] = bytes[i++];
        if (this.#headerFill < FRAME_HEADER_BYTES) continue;
        this.#headerFill = 0;
        const h = this.#header;
        const lo = (h[0] | (h[1] << 8) | (h[2] << 16) | (h[3] << 24)) >>> 0;
        const hi = (h[4] | (h[5] << 8) | (h[6] << 16) | (h[7] << 24)) >>> 0;
        if (hi * 4294967296 + lo > this.max) {
          this.fatal = true;
          return;
        }
        this.#pendingHash = fnvLength(this.hash, lo);
        if (this.#keepFirst && this.messages === 0) this.#firstParts = [];
        if (lo === 0) this.#complete(base + i);
        else {
          this.#inPayload = true;
          this.#remaining = lo;
        }
      } else {
        const take = Math.min(this.#remaining, bytes.length - i);
        const part = bytes.subarray(i, i + take);
        this.#pendingHash = fnv(this.#pendingHash, part);
        if (this.#firstParts) { for (const b of part) this.#firstParts.push(b); }
        i += take;
        this.#remaining -= take;
        if (this.#remaining === 0) {
          this.#inPayload = false;
          this.#complete(base + i);
        }
      }
    }
  }

  #complete(end: number): void {
    if (this.messages === 0) this.firstEnd = end;
    if (this.#firstParts) {
      this.first = new Uint8Array(this.#firstParts);
      this.#firstParts = undefined;
    }
    this.messages++;
    this.hash = this.#pendingHash;
  }
}
