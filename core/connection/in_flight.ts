/**
 * {@linkcode InFlightMessages}: the framed messages an outgoing client handed to its transport since
 * the last drain, kept so that a connection loss can tell which of them never fully reached the
 * kernel. Those are sent again, whole, on the next connection: the receiver drops the partial frame
 * the broken connection left, so it never sees half a message or one twice.
 *
 * @module
 */
import { FRAME_HEADER_BYTES } from "../wire/codec.ts";
import { payloadViews } from "../wire/frame_batch.ts";
import { OutputKind } from "./output.ts";

/** The size of `batch` on the wire: each payload and its header, or frames as they are. */
function wireBytes(batch: readonly Uint8Array[], kind: OutputKind): number {
  const header = kind === OutputKind.framed ? FRAME_HEADER_BYTES : 0;
  let bytes = 0;
  for (let i = 0; i < batch.length; i++) bytes += batch[i]!.length + header;
  return bytes;
}

/**
 * Messages written and not yet drained, oldest first.
 *
 * @example
 * ```ts
 * import { InFlightMessages } from "./in_flight.ts";
 * const inFlight = new InFlightMessages();
 * inFlight.add([new Uint8Array(100), new Uint8Array(100)], 0); // framed: 216 bytes with headers
 * // The connection broke with 150 bytes never handed to the kernel: the second message was cut.
 * inFlight.unwritten(150).length; // 1
 * ```
 */
export class InFlightMessages {
  /** Set once the connection is open: only then is written output kept until it drains. */
  tracking = false;
  /** The batches handed to the transport, each as the core queued it: payloads, or runs of frames. */
  #batches: Uint8Array[][] = [];
  /** Per batch: true when it holds runs of frames as received (`OutputKind.frames`). */
  #asFrames: boolean[] = [];
  /** Their framed size. */
  #bytes = 0;
  /** Raw bytes went out among them: message boundaries are unknown, so nothing is resent. */
  #untracked = false;

  /**
   * A batch was handed to the transport: payloads to frame, raw bytes, or frames as received.
   * `bytes` is its size on the wire, which the caller usually knows already.
   */
  add(batch: Uint8Array[], kind: OutputKind, bytes: number = wireBytes(batch, kind)): void {
    if (kind === OutputKind.raw) {
      this.#untracked = true;
      return;
    }
    this.#batches.push(batch);
    this.#asFrames.push(kind === OutputKind.frames);
    this.#bytes += bytes;
  }

  /** Everything written so far reached the kernel: nothing is in flight. */
  clear(): void {
    this.#batches.length = 0;
    this.#asFrames.length = 0;
    this.#bytes = 0;
    this.#untracked = false;
  }

  /**
   * The connection closed with `discardedBytes` (the transport's count) never handed to the kernel:
   * the messages those bytes belong to, in order, the partly written one first. Each is whole.
   * Forgets everything.
   */
  unwritten(discardedBytes: number): Uint8Array[] {
    const result: Uint8Array[] = [];
    if (!this.#untracked && discardedBytes > 0) {
      // Bytes before `written` reached the kernel (at most once); a message that ends past it is resent.
      const written = this.#bytes - Math.min(discardedBytes, this.#bytes);
      let end = 0;
      for (let i = 0; i < this.#batches.length; i++) {
        // Only after a loss: frames as received are cut into their messages here, not per write.
        const batch = this.#asFrames[i] ? payloadViews(this.#batches[i]!) : this.#batches[i]!;
        for (const message of batch) {
          end += message.length + FRAME_HEADER_BYTES;
          if (end > written) result.push(message);
        }
      }
    }
    this.clear();
    return result;
  }
}
