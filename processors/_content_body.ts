/**
 * A `Content-Length` request body assembled as it arrives, for {@linkcode HttpResponder}.
 *
 * @module
 */

/** A body gets its own buffer once this share of it arrived (2: half), never from the claimed length alone. */
const BUFFER_AFTER = 2;
/** Per piece taken into the buffer, up to this many times its length of the earlier pieces are copied in too. */
const CATCH_UP = 2;

const empty = new Uint8Array(0);

/**
 * The pieces of a body's first half are kept as they came (views of the reads: no copy). Then one
 * buffer of the body's length takes every later piece, and with each one copies in up to twice its
 * length of the earlier pieces, so that no read copies much more than itself (one large copy at the
 * end stalled every other connection of the core) and the reads are not held to the end. The body
 * is copied once; what is allocated is never more than twice what arrived.
 */
export class ContentBody {
  readonly #length: number;
  /** The pieces not yet in `#buffer`, from `#from` on; `#at` is where the next one goes. */
  #parts: Uint8Array[] = [];
  #from = 0;
  #at = 0;
  #buffer: Uint8Array | undefined;
  #received = 0;

  /** @param length The body's length, from `Content-Length` (already checked against the cap). */
  constructor(length: number) {
    this.#length = length;
  }

  /** Takes the next piece of the body; the caller never passes more than is due. */
  push(piece: Uint8Array): void {
    let buffer = this.#buffer;
    if (buffer === undefined) {
      if ((this.#received + piece.length) * BUFFER_AFTER < this.#length) {
        this.#parts.push(piece);
        this.#received += piece.length;
        return;
      }
      buffer = this.#buffer = new Uint8Array(this.#length);
    }
    buffer.set(piece, this.#received);
    this.#received += piece.length;
    if (this.#from < this.#parts.length) this.#catchUp(buffer, piece.length * CATCH_UP);
  }

  /** The whole body, once every byte of it was pushed: a buffer of its own, no view of a read. */
  take(): Uint8Array {
    if (this.#buffer === undefined) return this.#length === 0 ? empty : this.#partial();
    this.#catchUp(this.#buffer, Infinity);
    return this.#buffer;
  }

  /** Copies up to `budget` bytes' worth of the earlier pieces into `buffer` (at least one piece). */
  #catchUp(buffer: Uint8Array, budget: number): void {
    const parts = this.#parts;
    while (this.#from < parts.length && budget > 0) {
      const part = parts[this.#from]!;
      parts[this.#from++] = empty; // the read it is a view of may go
      buffer.set(part, this.#at);
      this.#at += part.length;
      budget -= part.length;
    }
    if (this.#from === parts.length) {
      this.#parts = [];
      this.#from = 0;
    }
  }

  #partial(): never {
    throw new RangeError(`Cannot take a body of ${this.#length} bytes: ${this.#received} arrived`);
  }
}
