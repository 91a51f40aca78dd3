/**
 * The payload of the streamed benchmark (B3, `scripts/stream.ts`): a pattern both ends agree on and an
 * order-sensitive checksum that costs about as much on every runtime.
 *
 * @module
 */

/** Bytes per chunk the sender yields. */
export const CHUNK_BYTES = 256 * 1024;
/** The pattern's period, a prime: no chunk starts at the same place as the one before. */
const PERIOD = 1_048_573;
/** The payload's pattern: `PERIOD` pseudo-random bytes (xorshift32, seed 1), repeated to hold one chunk more. */
function pattern(): Uint8Array {
  const out = new Uint8Array(PERIOD + CHUNK_BYTES);
  let x = 1;
  for (let i = 0; i < PERIOD; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  out.copyWithin(PERIOD, 0, CHUNK_BYTES);
  return out;
}

/**
 * The `byteLength` payload bytes, in chunks of {@linkcode CHUNK_BYTES} (views of one buffer, never
 * modified).
 */
export function* patternChunks(byteLength: number): Generator<Uint8Array> {
  const buf = pattern();
  let at = 0;
  for (let sent = 0; sent < byteLength;) {
    const n = Math.min(CHUNK_BYTES, byteLength - sent);
    yield buf.subarray(at, at + n);
    sent += n;
    at = (at + n) % PERIOD;
  }
}

/** An order-sensitive checksum (Fletcher over 32-bit words) of bytes fed in any split. */
export class Checksum {
  #a = 1;
  #b = 0;
  #bytes = 0;
  readonly #scratch = new Uint8Array(CHUNK_BYTES + 8);
  readonly #words = new Int32Array(this.#scratch.buffer);
  #carry = 0; // bytes at the start of #scratch not summed yet (fewer than 4)

  /** Adds `chunk`. */
  update(chunk: Uint8Array): void {
    this.#bytes += chunk.length;
    const scratch = this.#scratch;
    const words = this.#words;
    for (let off = 0; off < chunk.length;) {
      const n = Math.min(CHUNK_BYTES, chunk.length - off);
      scratch.set(chunk.subarray(off, off + n), this.#carry);
      const total = this.#carry + n;
      const whole = total >>> 2;
      let a = this.#a;
      let b = this.#b;
      for (let i = 0; i < whole; i++) {
        a = (a + words[i]!) | 0;
        b = (b + a) | 0;
      }
      this.#a = a;
      this.#b = b;
      this.#carry = total & 3;
      scratch.copyWithin(0, whole * 4, total);
      off += n;
    }
  }

  /** The checksum of everything added: `bytes:a:b` in hex, the last partial word zero-padded. */
  digest(): string {
    let a = this.#a;
    let b = this.#b;
    if (this.#carry > 0) {
      this.#scratch.fill(0, this.#carry, 4);
      a = (a + this.#words[0]!) | 0;
      b = (b + a) | 0;
    }
    return `${this.#bytes}:${(a >>> 0).toString(16)}:${(b >>> 0).toString(16)}`;
  }
}

/** The checksum of the pattern's first `byteLength` bytes, as a receiver reports it. */
export function expectedChecksum(byteLength: number): string {
  const sum = new Checksum();
  for (const chunk of patternChunks(byteLength)) sum.update(chunk);
  return sum.digest();
}
