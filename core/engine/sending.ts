/**
 * {@linkcode Sender}: queues what the application sends to a client, on its open connection, or in
 * its send buffer while an outgoing client is away. UDP clients' datagrams are checked against the
 * largest datagram first.
 *
 * @module
 */
import { toBytes } from "../wire/bytes.ts";
import type { ClientRegistry } from "../clients/client_registry.ts";
import type { OutgoingClients } from "../clients/outgoing.ts";
import { Phase } from "../connection/session.ts";
import { UnsupportedError } from "../errors.ts";
import { checkDatagramSize, checkDatagramSizes, udpTarget } from "../udp/datagram_peers.ts";
import { type FrameBatch, frameBatchRuns, frameBatchSent, payloadViews } from "../wire/frame_batch.ts";
import type { MemoryBudget } from "./memory_budget.ts";
import type { ClientId } from "../types.ts";
import { checkMessages, refuseMessage } from "./message_check.ts";

/** The send path of `IoCore`'s `sendMessageToClient`, `sendMessagesToClient` and `sendFrames`. */
export class Sender {
  readonly #registry: ClientRegistry;
  readonly #outgoing: OutgoingClients;
  readonly #budget: MemoryBudget;
  readonly #maxMessageBytes: number;

  /** Sends to `registry`'s clients; `budget` is the owner of batches this core made. */
  constructor(
    registry: ClientRegistry,
    outgoing: OutgoingClients,
    budget: MemoryBudget,
    maxMessageBytes: number,
  ) {
    this.#registry = registry;
    this.#outgoing = outgoing;
    this.#budget = budget;
    this.#maxMessageBytes = maxMessageBytes;
  }

  /** Queues one message for the client: on its open connection, or in its send buffer while away. */
  sendOne(id: ClientId, payload: Uint8Array): void {
    const record = this.#registry.get(id);
    const to = udpTarget(record);
    if (to !== undefined) checkDatagramSize(payload.length, to, this.#maxMessageBytes);
    const session = record?.session;
    if (session !== undefined && session.phase === Phase.open) session.queueOutput(payload);
    else this.#outgoing.sendWhileAway(id, record, [payload], "send message");
  }

  /**
   * Queues several messages, in order, in one batch (all of them or, while away, none). Each item is
   * checked before anything is queued: one that is neither bytes nor text throws a `TypeError`.
   */
  sendMany(id: ClientId, messages: readonly unknown[], action: string): void {
    const record = this.#registry.get(id);
    const session = record?.session;
    if (session !== undefined && session.phase === Phase.open && udpTarget(record) === undefined) {
      // The items are checked in the pass that counts their bytes, not in one of their own.
      const refused = session.queueOutputs(messages);
      if (refused < 0) refuseMessage(messages, -1 - refused, action);
      return;
    }
    checkMessages(messages, action);
    const list = messages as readonly (Uint8Array | string)[];
    const to = udpTarget(record);
    if (to !== undefined) checkDatagramSizes(to, list, this.#maxMessageBytes);
    if (session !== undefined && session.phase === Phase.open) session.queueOutputs(list);
    else this.#outgoing.sendWhileAway(id, record, list.map(toBytes), action);
  }

  /** Queues a batch this core made: on the client's open connection, or while away as its messages. */
  sendFrames(id: ClientId, batch: FrameBatch): void {
    const record = this.#registry.get(id);
    if (udpTarget(record) !== undefined) {
      throw new UnsupportedError(
        `Cannot send frames: client ${id} is a UDP client, whose datagrams are whole messages; use sendMessagesToClient`,
      );
    }
    const session = record?.session;
    if (session !== undefined && session.phase === Phase.open) return session.sendFrames(batch);
    const runs = frameBatchRuns(batch, this.#budget, "send frames");
    this.#outgoing.sendWhileAway(id, record, payloadViews(runs), "send frames");
    frameBatchSent(batch);
  }
}
