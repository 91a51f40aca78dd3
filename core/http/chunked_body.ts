/**
 * The chunked transfer coding of a request body (RFC 9112 §7.1), decoded across any split of its bytes,
 * with no I/O: the body's pieces come out as views of the input, chunk extensions are skipped, and
 * trailer fields are read and dropped.
 *
 * @module
 */
import { HttpRequestError } from "./request_head.ts";

const CR = 13;
const LF = 10;

/** Where the decoder stands. */
const Chunk = {
  /** At the start of a chunk-size line. */
  size: 0,
  /** In the hex digits of the size. */
  sizeDigits: 1,
  /** After the digits: whitespace before `;`, the extensions, up to CR. */
  extension: 2,
  sizeLf: 3,
  data: 4,
  dataCr: 5,
  dataLf: 6,
  /** At the start of a trailer line (or of the final empty line). */
  trailerStart: 7,
  trailer: 8,
  trailerLf: 9,
  endLf: 10,
} as const;
type Chunk = typeof Chunk[keyof typeof Chunk];

function hexValue(byte: number): number {
  if (byte >= 48 && byte <= 57) return byte - 48;
  const lower = byte | 0x20;
  return lower >= 97 && lower <= 102 ? lower - 87 : -1;
}

/**
 * Decodes one chunked body. The body cap is counted across chunks, from each chunk's declared size,
 * before its data is taken in.
 */
export class ChunkedBodyDecoder {
  readonly #maxBodyBytes: number;
  readonly #maxLineBytes: number;
  #state: Chunk = Chunk.size;
  #size = 0;
  #lineBytes = 0;
  #received = 0;

  /**
   * Creates the decoder for one body.
   *
   * @param maxBodyBytes The body's cap, over all chunks (413 beyond it).
   * @param maxLineBytes The cap on a chunk-size line with its extensions, and on the trailer section.
   */
  constructor(maxBodyBytes: number, maxLineBytes: number) {
    this.#maxBodyBytes = maxBodyBytes;
    this.#maxLineBytes = maxLineBytes;
  }

  /** The body bytes decoded so far. */
  get received(): number {
    return this.#received;
  }

  /** True before any byte of the first chunk-size line. */
  get atStart(): boolean {
    return this.#state === Chunk.size && this.#received === 0 && this.#lineBytes === 0;
  }

  /**
   * Decodes `bytes` from `offset`, pushing each piece of body data (a view of `bytes`) to `pieces`.
   * Returns the index just after the body (its trailers included), or -1 when the body goes on past
   * `bytes`.
   *
   * @throws {HttpRequestError} 400 for malformed framing, 413 when the chunks' sizes pass the cap.
   */
  decode(bytes: Uint8Array, offset: number, pieces: Uint8Array[]): number {
    let state: Chunk = this.#state;
    let i = offset;
    while (i < bytes.length) {
      if (state === Chunk.data) {
        const take = Math.min(this.#size, bytes.length - i);
        pieces.push(bytes.subarray(i, i + take));
        this.#size -= take;
        i += take;
        if (this.#size === 0) state = Chunk.dataCr;
        continue;
      }
      const byte = bytes[i++]!;
      if (state !== Chunk.dataCr && state !== Chunk.dataLf && ++this.#lineBytes > this.#maxLineBytes) {
        throw malformed("a chunk-size line or the trailers exceed the head size cap");
      }
      switch (state) {
        case Chunk.size:
        case Chunk.sizeDigits: {
          const digit = hexValue(byte);
          if (digit >= 0) {
            // 16 hex digits can exceed 2^53: the cap check below refuses long before.
            this.#size = this.#size * 16 + digit;
            if (this.#received + this.#size > this.#maxBodyBytes) {
              throw new HttpRequestError(
                413,
                `Cannot read chunked body: it exceeds maxBodyBytes ${this.#maxBodyBytes}`,
              );
            }
            state = Chunk.sizeDigits;
            continue;
          }
          if (state === Chunk.size) throw malformed("a chunk size is not hex digits");
          if (byte === CR) state = Chunk.sizeLf;
          else if (byte === 59 || byte === 32 || byte === 9) state = Chunk.extension; // ';' or BWS
          else throw malformed("a chunk size is not hex digits");
          continue;
        }
        case Chunk.extension:
          if (byte === CR) state = Chunk.sizeLf;
          else if (byte < 32 && byte !== 9 || byte === 127) {
            throw malformed("a chunk extension holds a control character");
          }
          continue;
        case Chunk.sizeLf:
          if (byte !== LF) throw malformed("a bare CR");
          this.#lineBytes = 0;
          if (this.#size === 0) state = Chunk.trailerStart;
          else {
            this.#received += this.#size;
            state = Chunk.data;
          }
          continue;
        case Chunk.dataCr:
          if (byte !== CR) throw malformed("a chunk's data is longer than its size");
          state = Chunk.dataLf;
          continue;
        case Chunk.dataLf:
          if (byte !== LF) throw malformed("a bare CR");
          state = Chunk.size;
          continue;
        case Chunk.trailerStart:
          if (byte === CR) state = Chunk.endLf;
          else if (byte === 32 || byte === 9) throw malformed("obsolete line folding in the trailers");
          else if (byte === LF || byte < 32 || byte === 127) {
            throw malformed("a control character in the trailers");
          } else state = Chunk.trailer;
          continue;
        case Chunk.trailer:
          if (byte === CR) state = Chunk.trailerLf;
          else if (byte < 32 && byte !== 9 || byte === 127) {
            throw malformed("a control character in the trailers");
          }
          continue;
        case Chunk.trailerLf:
          if (byte !== LF) throw malformed("a bare CR");
          state = Chunk.trailerStart;
          continue;
        case Chunk.endLf:
          if (byte !== LF) throw malformed("a bare CR");
          this.#state = Chunk.size;
          this.#lineBytes = 0;
          return i;
      }
    }
    this.#state = state;
    return -1;
  }
}

function malformed(message: string): HttpRequestError {
  return new HttpRequestError(400, `Cannot read chunked body: ${message}`);
}
