/**
 * Streamed messages on the sending side: {@linkcode sendMessageStream} writes one frame whose payload
 * comes from a `ReadableStream` or an async iterable, as fast as the connection drains.
 *
 * @module
 */
import { AsockioError, ConnectionClosedError, StreamLengthError, UnsupportedError } from "../errors.ts";
import type { ClientRecord } from "../clients/client_registry.ts";
import { udpTarget } from "../udp/datagram_peers.ts";
import { Phase } from "./session_phase.ts";
import { FRAME_HEADER_BYTES, putHeader } from "../wire/frame_header.ts";
import type { MemoryBudget } from "../engine/memory_budget.ts";
import type { Session } from "./session.ts";

/** Above this much output queued or in flight, the sender waits for the connection to drain. */
const SEND_HIGH_WATER_MARK_BYTES = 1024 * 1024;

/**
 * What a message stream's payload may come from (see `IoCore.sendMessageStream`).
 *
 * @example
 * ```ts
 * import type { MessageStreamSource } from "@asockio/core";
 * const source: MessageStreamSource = new Blob([new Uint8Array(3)]).stream();
 * ```
 */
export type MessageStreamSource = ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>;

/**
 * Writes a frame of `byteLength` bytes to `session`, its payload from `source`, after any stream
 * already being written; output queued meanwhile follows it. The bytes that complete the frame are
 * held back until the source has ended, so a source that yields too much never completes a frame.
 * Rejects with `StreamLengthError` (short or long source), `AsockioError` (the source threw, as
 * `cause`) or the connection's error, and closes the connection in each case but the last.
 *
 * @example
 * ```ts
 * import { sendMessageStream } from "./message_stream_send.ts";
 * // IoCore.sendMessageStream calls it: await sendMessageStream(session, budget, source, byteLength, "client 3");
 * ```
 */
export async function sendMessageStream(
  session: Session,
  budget: MemoryBudget,
  source: MessageStreamSource,
  byteLength: number,
  to: string,
): Promise<void> {
  const output = session.output;
  await new Promise<void>((start, abort) => output.streamTurn({ start, abort }));
  const closedError = () =>
    session.client?.lastError ??
      new ConnectionClosedError(`Cannot send message stream to ${to}: the connection closed`);
  const drained = () =>
    output.whenDrained().catch(() => {
      throw closedError();
    });
  /** Hands `bytes` to the transport at once; returns a promise only when the sender must wait. */
  const write = (bytes: Uint8Array): Promise<void> | undefined => {
    if (session.closed) throw closedError();
    budget.queued(output.pushStreamBytes(bytes), session);
    session.flushNow();
    return session.queuedOutputBytes > SEND_HIGH_WATER_MARK_BYTES ? drained() : undefined;
  };
  const fail = (error: Error): never => {
    session.fail(error, false);
    throw error;
  };
  const header = new Uint8Array(FRAME_HEADER_BYTES);
  putHeader(header, 0, byteLength);
  await write(header);
  let sent = 0;
  let last: Uint8Array | undefined; // the bytes that complete the frame, until the source ends
  const lengthError = (got: string) =>
    new StreamLengthError(
      `Cannot send message stream to ${to}: the source yielded ${got} of ${byteLength} bytes`,
    );
  const iterator = readerOf(source);
  try {
    for (;;) {
      let step: IteratorResult<Uint8Array>;
      try {
        step = await iterator.next();
      } catch (err) {
        if (session.closed) throw closedError();
        return fail(
          new AsockioError(`Cannot send message stream to ${to}: its source threw after ${sent} bytes`, {
            cause: err,
          }),
        );
      }
      if (step.done) break;
      const chunk = step.value;
      if (!(chunk instanceof Uint8Array)) {
        return fail(
          new TypeError(
            `Cannot send message stream to ${to}: the source yielded a ${typeof chunk}, not a Uint8Array`,
          ),
        );
      }
      if (last !== undefined || sent + chunk.length > byteLength) return fail(lengthError("more than"));
      if (sent + chunk.length === byteLength) last = chunk;
      else if (chunk.length > 0) {
        const full = write(chunk);
        if (full !== undefined) await full; // no promise turn per chunk while the connection keeps up
      }
      sent += chunk.length;
    }
    if (sent < byteLength) return fail(lengthError(String(sent)));
    if (last !== undefined) await write(last);
    output.streamEnded();
    session.flushNow();
  } finally {
    await iterator.return?.().catch(() => {});
  }
}

/**
 * Checks a `sendMessageStream` call for client `id` (`record`, if registered) and sends the stream
 * (see {@linkcode sendMessageStream}).
 *
 * @example
 * ```ts
 * import { startMessageStream } from "./message_stream_send.ts";
 * // IoCore.sendMessageStream: await startMessageStream(record, budget, source, byteLength, id);
 * ```
 */
export async function startMessageStream(
  record: ClientRecord,
  budget: MemoryBudget,
  source: MessageStreamSource,
  byteLength: number,
  id: number,
): Promise<void> {
  const action = "Cannot send message stream";
  if (typeof byteLength !== "number") {
    throw new TypeError(`${action}: byteLength must be a number, got ${typeof byteLength}`);
  }
  if (!Number.isSafeInteger(byteLength) || byteLength < 0) {
    throw new RangeError(`${action}: byteLength ${byteLength} is not an integer in [0, 2^53-1]`);
  }
  const iterable = typeof source === "object" && source !== null &&
    (typeof (source as ReadableStream).getReader === "function" ||
      typeof (source as AsyncIterable<Uint8Array>)[Symbol.asyncIterator] === "function");
  if (!iterable) {
    throw new TypeError(`${action}: source must be a ReadableStream or an async iterable of Uint8Array`);
  }
  if (udpTarget(record) !== undefined) {
    throw new UnsupportedError(`${action}: client ${id} is a UDP client, whose datagrams are whole messages`);
  }
  const session = record.session;
  if (session === undefined || session.phase !== Phase.open) {
    throw new ConnectionClosedError(
      `${action}: client ${id} is not connected (a stream cannot wait for a reconnect)`,
    );
  }
  if (session.raw) {
    throw new UnsupportedError(`${action}: client ${id} is in raw mode, where bytes are sent as they are`);
  }
  await sendMessageStream(session, budget, source, byteLength, `client ${id}`);
}

/** An iterator over `source`, a `ReadableStream` (read with its reader) or any async iterable. */
function readerOf(source: MessageStreamSource): AsyncIterator<Uint8Array> {
  if (typeof (source as ReadableStream<Uint8Array>).getReader === "function") {
    const reader = (source as ReadableStream<Uint8Array>).getReader();
    return {
      next: () => reader.read() as Promise<IteratorResult<Uint8Array>>,
      return: async () => {
        await reader.cancel().catch(() => {});
        reader.releaseLock();
        return { done: true, value: undefined };
      },
    };
  }
  return (source as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
}
