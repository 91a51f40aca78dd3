/**
 * The few byte helpers asockio needs, kept local because asockio has no runtime dependencies.
 *
 * No I/O and no runtime globals: these run the same on Deno, Bun and Node.
 *
 * @module
 */

/** One encoder for the whole module: a `TextEncoder` is stateless, so sharing it is safe. */
const encoder = new TextEncoder();

/** Size of the shared slab small buffers are carved from. */
const POOL_SIZE = 64 * 1024;
/** Buffers up to this size come from the slab; a slab is never more than 1/16 wasted when replaced. */
const POOLED_MAX = 4 * 1024;
/** Below this many UTF-16 units a JS loop beats the native call overhead of `encodeInto`. */
const SMALL_ASCII_LIMIT = 16;

let pool = new Uint8Array(POOL_SIZE);
let poolOffset = 0;

/** Makes room for `size` bytes in the slab, replacing it when full (or detached by a transfer). */
function reservePool(size: number): void {
  if (pool.length - poolOffset < size) {
    pool = new Uint8Array(POOL_SIZE);
    poolOffset = 0;
  }
}

/**
 * A zero-filled buffer of `size` bytes. Small buffers are views carved from a shared 64 KiB slab,
 * as Node's `Buffer` pool does: V8 (Deno, Node) pays a few hundred nanoseconds for every new
 * off-heap `ArrayBuffer`, a view costs a few dozen. So the result may share its `ArrayBuffer` with
 * other buffers: use it through its own bounds only, and never transfer its `buffer`.
 *
 * @param size The length in bytes, a non-negative integer.
 * @returns A zero-filled buffer of exactly `size` bytes.
 */
export function allocBytes(size: number): Uint8Array {
  if (!(size >= 0 && size <= POOLED_MAX && (size | 0) === size)) {
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new RangeError(`Cannot allocate bytes: size ${size} is not a non-negative integer`);
    }
    return new Uint8Array(size);
  }
  reservePool(size);
  const start = poolOffset;
  poolOffset = start + size;
  return pool.subarray(start, poolOffset);
}

/**
 * Copies `source[start, start + length)` into `target` at `at`; returns `at + length`. Up to 64 bytes it
 * copies a byte at a time, which beats `set` and the `subarray` it needs; beyond, it uses `set`.
 */
export function putBytes(
  target: Uint8Array,
  at: number,
  source: Uint8Array,
  start: number,
  length: number,
): number {
  if (length > 64) {
    target.set(source.subarray(start, start + length), at);
    return at + length;
  }
  const end = start + length;
  for (let i = start; i < end; i++) target[at++] = source[i]!;
  return at;
}

/**
 * Joins chunks into one buffer. A single chunk is returned as is (no copy), so the result may share
 * memory with the input.
 *
 * @param chunks The chunks, in order.
 * @param totalLength The sum of the chunks' lengths when the caller already knows it, which saves a
 *   pass over `chunks`. A wrong value throws a `RangeError`.
 * @returns One buffer holding every chunk's bytes in order.
 */
export function concatBytes(chunks: readonly Uint8Array[], totalLength?: number): Uint8Array {
  const count = chunks.length;
  if (count === 1 && (totalLength === undefined || totalLength === chunks[0].length)) return chunks[0];
  let total = 0;
  if (totalLength === undefined) {
    for (let i = 0; i < count; i++) total += chunks[i].length;
  } else {
    if (!Number.isSafeInteger(totalLength) || totalLength < 0) {
      throw new RangeError(`Cannot concatenate bytes: totalLength ${totalLength} is not a valid length`);
    }
    total = totalLength;
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (let i = 0; i < count; i++) {
    const chunk = chunks[i];
    if (offset + chunk.length > total) {
      throw new RangeError(`Cannot concatenate bytes: chunks hold more than totalLength ${total}`);
    }
    out.set(chunk, offset);
    offset += chunk.length;
  }
  if (offset !== total) {
    throw new RangeError(`Cannot concatenate bytes: chunks hold ${offset} bytes, not totalLength ${total}`);
  }
  return out;
}

/**
 * Tells whether two byte arrays hold the same bytes. Not constant-time: do not compare secrets
 * with it.
 *
 * @param a The first array.
 * @param b The second array.
 * @returns `true` when both have the same length and contents.
 */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  const n = a.length;
  if (n !== b.length) return false;
  if (a === b) return true;
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return false;
  }
  return true;
}

/**
 * Throws a `TypeError` unless `value` is a `Uint8Array` (a Node `Buffer` is one): a string, an
 * `ArrayBuffer` or another typed array would otherwise be framed as garbage without a word.
 *
 * @param value What was passed.
 * @param name The argument's name in the message, such as `payloads[2]`.
 * @param action What failed, such as `encode frame`.
 */
export function assertBytes(value: unknown, name: string, action: string): asserts value is Uint8Array {
  if (value instanceof Uint8Array) return;
  const noun = typeof value === "object" && value !== null
    ? (value as object).constructor?.name ?? "object"
    : "";
  const kind = value === null
    ? "null"
    : typeof value === "object"
    ? `${/^[aeiou]/i.test(noun) ? "an" : "a"} ${noun}`
    : typeof value === "string"
    ? "a string"
    : String(value);
  throw new TypeError(`Cannot ${action}: ${name} must be a Uint8Array, got ${kind}`);
}

/**
 * Returns bytes as they are, or a string encoded as UTF-8. Lone surrogates become U+FFFD, as with
 * `TextEncoder`. Short text is encoded into the slab {@linkcode allocBytes} uses, with its caveats.
 *
 * @param data Bytes (returned unchanged, not copied) or text.
 * @returns The bytes.
 */
export function toBytes(data: Uint8Array | string): Uint8Array {
  if (typeof data !== "string") return data;
  const n = data.length;
  const worstCase = n * 3;
  if (worstCase > POOLED_MAX) return encoder.encode(data);
  reservePool(worstCase);
  const start = poolOffset;
  let end = start + n;
  if (n <= SMALL_ASCII_LIMIT) {
    // Short ASCII strings (keywords, small commands) dominate; a loop skips the native call.
    const target = pool;
    for (let i = 0; i < n; i++) {
      const c = data.charCodeAt(i);
      if (c >= 0x80) {
        end = -1;
        break;
      }
      target[start + i] = c;
    }
  } else {
    end = -1;
  }
  if (end < 0) {
    // encodeInto straight into the slab: no exact-size pre-pass, no intermediate buffer.
    end = start + encoder.encodeInto(data, pool.subarray(start)).written;
  }
  poolOffset = end;
  return pool.subarray(start, end);
}
