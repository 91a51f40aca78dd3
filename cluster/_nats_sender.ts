/**
 * The sending side of `natsCluster`: sends by keyword, two batches per keyword in flight (they
 * arrive in the order made: a batch is sent again only when nothing was sent after it), and the
 * batches of one tick that go to the same node in one request to that node's subject. A keyword's node is learned from its holder's answers; a keyword whose
 * node is not known yet, or that moved, goes to its own subject, where NATS finds the holder.
 *
 * @module
 */
import {
  ClientNotConnectedError,
  MessageTooLargeError,
  SendBufferFullError,
  TimeoutError,
} from "../core/errors.ts";
import { describeKeyword } from "../core/engine/keyword_router.ts";
import {
  decodeResults,
  encodeBatch,
  encodeMulti,
  isNoResponders,
  isTimeout,
  keywordToken,
  type MultiEntry,
  multiEntryBytes,
  Op,
  PART_FIRST,
  PART_LAST,
  Reply,
} from "./_nats_wire.ts";

/** What the sender needs of a nats.js connection. */
export interface NatsRequester {
  request(subject: string, data: Uint8Array, options: { timeout: number }): Promise<{ data: Uint8Array }>;
  readonly info?: { readonly max_payload?: number } | undefined;
}

/** Pauses after "no responders" before trying again: right after a subscription changes, NATS may answer so for a moment. */
const NO_RESPONDERS_RETRY_MS = [5, 10, 10];
/** Room kept in a request for its header. */
const REQUEST_OVERHEAD = 64;
/** The request size when the server did not say (NATS's default `max_payload`). */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;
/** Keywords whose node is remembered; the oldest is forgotten beyond this (bounded memory). */
const MAX_ROUTES = 65_536;
/**
 * Batches of one keyword in flight at once: with two, the sending node encodes the next batch
 * while the holder delivers the last one.
 */
const BATCHES_IN_FLIGHT = 2;

const decoder = new TextDecoder();

/**
 * The sends of one keyword that travel in one request: their messages in order, and one promise
 * that settles them all. A send joins the keyword's last batch while it waits and has room; each
 * caller gets its own promise derived from the batch's, so a failure unhandled by one caller is
 * still reported for that caller.
 */
interface Batch {
  /** The messages of every call in the batch, in order. */
  readonly messages: Uint8Array[];
  /** The request's size: its op byte, and 4 bytes and the bytes of each message. */
  bytes: number;
  /** The calls in it (counted as failures when it fails). */
  calls: number;
  /** More than one request can carry (one call's messages): sent alone, in parts if need be. */
  readonly large: boolean;
  readonly promise: Promise<void>;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

/** A new batch, empty. */
function newBatch(large: boolean): Batch {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((yes, no) => {
    resolve = yes;
    reject = no;
  });
  // Every caller's promise is derived from this one: that one is handled, theirs report for themselves.
  return { messages: [], bytes: 1, calls: 0, large, promise, resolve, reject };
}

/**
 * A keyword's sends: up to {@linkcode BATCHES_IN_FLIGHT} batches in flight, in the order made. A
 * batch is sent again (after "no responders" or "offline": nothing was delivered) only while it is
 * the last one sent, and alone: nothing sent after it can arrive before it.
 */
interface KeywordQueue {
  readonly keyword: Uint8Array;
  /** The keyword's bytes as a string, one char a byte: the queue's key. */
  readonly key: string;
  readonly token: string;
  readonly subject: string;
  /** Batches not sent yet; new sends join the last one while it has room. */
  pending: Batch[];
  /** In the next flush's list. */
  scheduled: boolean;
  /** Batches sent and not settled yet. */
  inFlight: number;
  /** The number of the last batch sent (batches are numbered from 1). */
  sent: number;
  /** The batch that must be the only one in flight (sent again, or in parts); 0 for none. */
  alone: number;
}

/** A batch of one keyword in a node's request. */
interface NodeEntry extends MultiEntry {
  readonly queue: KeywordQueue;
  readonly batch: Batch;
  /** The batch's number in its queue. */
  readonly seq: number;
}

/** The counters the sender shares with its bus. */
export interface SenderCounters {
  sendsOut: number;
  failures: number;
  /** Requests to a node's subject carrying several keywords' batches. */
  nodeRequests: number;
  /** Requests to a keyword's subject. */
  keywordRequests: number;
}

/** Sends by keyword through NATS for one bus. */
export class NatsSender {
  readonly #nc: NatsRequester;
  readonly #prefix: string;
  readonly #timeoutMs: number;
  /** Identifies this sender's parts of large messages on the holding node. */
  readonly #partId: Uint8Array;
  readonly #maxMessageBytes: () => number;
  readonly counters: SenderCounters = { sendsOut: 0, failures: 0, nodeRequests: 0, keywordRequests: 0 };
  readonly #queues = new Map<string, KeywordQueue>();
  /** The node that last answered for a keyword's token. */
  readonly #routes = new Map<string, string>();
  /** Queues with a batch for the next flush. */
  #ready: KeywordQueue[] = [];
  /** The queue of the last send (in `#queues`), tried first. */
  #last: KeywordQueue | undefined = undefined;
  #flushQueued = false;

  /**
   * A sender over `nc`, to subjects under `prefix`; `partId` marks its parts of large messages;
   * `maxMessageBytes` is this core's limit (named in a holder's `MessageTooLargeError`).
   */
  constructor(
    nc: NatsRequester,
    prefix: string,
    timeoutMs: number,
    partId: Uint8Array,
    maxMessageBytes: () => number,
  ) {
    this.#nc = nc;
    this.#maxMessageBytes = maxMessageBytes;
    this.#prefix = prefix;
    this.#timeoutMs = timeoutMs;
    this.#partId = partId;
  }

  /** Queues `messages` for `keyword`; resolves once its holder queued them (see `ClusterBus.send`). */
  send(keyword: Uint8Array, messages: Uint8Array[]): Promise<void> {
    const queue = this.#queue(keyword);
    let bytes = 0;
    for (let i = 0; i < messages.length; i++) bytes += messages[i]!.length + 4;
    const max = this.#maxBody;
    const pending = queue.pending;
    let batch = pending[pending.length - 1];
    if (batch === undefined || batch.large || (batch.calls > 0 && batch.bytes + bytes > max)) {
      batch = newBatch(1 + bytes > max);
      pending.push(batch);
    }
    batch.calls++;
    batch.bytes += bytes;
    if (messages.length === 1) batch.messages.push(messages[0]!);
    else for (let i = 0; i < messages.length; i++) batch.messages.push(messages[i]!);
    this.#schedule(queue);
    return batch.promise.then();
  }

  /** The queue of `keyword`: the last one used when it is the same keyword (a burst), else by its bytes. */
  #queue(keyword: Uint8Array): KeywordQueue {
    const last = this.#last;
    if (last !== undefined && sameBytes(last.keyword, keyword)) return last;
    // Keyed by the bytes themselves: the subject token (base64) is made once per queue, not per send.
    let key = "";
    for (let i = 0; i < keyword.length; i++) key += String.fromCharCode(keyword[i]!);
    let queue = this.#queues.get(key);
    if (!queue) {
      const token = keywordToken(keyword);
      queue = {
        keyword: keyword.slice(),
        key,
        token,
        subject: this.#prefix + token,
        pending: [],
        scheduled: false,
        inFlight: 0,
        sent: 0,
        alone: 0,
      };
      this.#queues.set(key, queue);
    }
    return this.#last = queue;
  }

  /**
   * A NATS request, tried again briefly on "no responders" (while `mayRetry` allows it); errors
   * become asockio's.
   */
  async request(
    subject: string,
    body: Uint8Array,
    keyword?: Uint8Array,
    mayRetry: () => boolean = () => true,
  ): Promise<Uint8Array> {
    for (let attempt = 0;; attempt++) {
      try {
        return (await this.#nc.request(subject, body, { timeout: this.#timeoutMs })).data;
      } catch (err) {
        const name = keyword ? `keyword ${describeKeyword(keyword)}` : "keyword";
        if (isNoResponders(err)) {
          if (attempt < NO_RESPONDERS_RETRY_MS.length && mayRetry()) {
            await new Promise((resolve) => setTimeout(resolve, NO_RESPONDERS_RETRY_MS[attempt]));
            continue;
          }
          throw new ClientNotConnectedError(`Cannot send to ${name}: no node holds it`, { cause: err });
        }
        if (isTimeout(err)) throw this.#timeout(name, err);
        throw err;
      }
    }
  }

  #timeout(name: string, cause: unknown): TimeoutError {
    return new TimeoutError(
      `Cannot send to ${name}: the holding node did not answer in ${this.#timeoutMs} ms; the messages may or may not have been queued`,
      { cause },
    );
  }

  /** The largest request body. */
  get #maxBody(): number {
    return Math.max(1024, (this.#nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD) - REQUEST_OVERHEAD);
  }

  /** `queue` has a batch to send: at the end of this tick, with the others (when it may send one). */
  #schedule(queue: KeywordQueue): void {
    if (queue.scheduled || queue.alone !== 0 || queue.inFlight >= BATCHES_IN_FLIGHT) return;
    queue.scheduled = true;
    this.#ready.push(queue);
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(() => this.#flush());
  }

  /** Sends a batch of each ready queue: together per known node, alone otherwise. */
  #flush(): void {
    this.#flushQueued = false;
    const ready = this.#ready;
    this.#ready = [];
    const max = this.#maxBody;
    const byNode = new Map<string, NodeEntry[]>();
    for (const queue of ready) {
      queue.scheduled = false;
      // A batch being sent again (or in parts) since this queue was scheduled goes alone.
      if (queue.pending.length === 0 || queue.alone !== 0 || queue.inFlight >= BATCHES_IN_FLIGHT) continue;
      const batch = queue.pending.shift()!;
      queue.inFlight++;
      const seq = ++queue.sent;
      // (A batch made for a larger max_payload, before a reconnect, goes as a large one.)
      if (batch.large || batch.bytes > max) {
        queue.alone = seq; // its parts, then the next batch
        void this.#run(queue, seq, batch, () => this.#sendLarge(queue, seq, batch.messages, max));
        continue;
      }
      // Another batch may go while this one is in flight.
      if (queue.pending.length > 0) this.#schedule(queue);
      const body = encodeBatch(batch.messages, batch.bytes);
      const node = this.#routes.get(queue.token);
      if (node === undefined) {
        void this.#run(queue, seq, batch, () => this.#requestOk(queue, seq, body));
        continue;
      }
      let entries = byNode.get(node);
      if (!entries) byNode.set(node, entries = []);
      entries.push({ keyword: queue.keyword, body, queue, batch, seq });
    }
    for (const [node, entries] of byNode) {
      if (entries.length === 1) {
        const { queue, batch, body, seq } = entries[0]!;
        void this.#run(queue, seq, batch, () => this.#requestOk(queue, seq, body));
        continue;
      }
      // As many requests as max_payload needs, each with as many keywords as fit.
      let group: NodeEntry[] = [];
      let bytes = 1;
      for (const entry of entries) {
        const size = multiEntryBytes(entry);
        if (group.length > 0 && bytes + size > max) {
          void this.#sendToNode(node, group);
          group = [];
          bytes = 1;
        }
        group.push(entry);
        bytes += size;
      }
      void this.#sendToNode(node, group);
    }
  }

  /** Runs a batch's sending; settles its calls, then lets the queue send its next batch. */
  async #run(
    queue: KeywordQueue,
    seq: number,
    batch: Batch,
    send: () => Promise<void>,
  ): Promise<void> {
    try {
      await send();
      this.#sent(batch);
    } catch (err) {
      this.#failed(batch, err);
    }
    this.#next(queue, seq);
  }

  #sent(batch: Batch): void {
    this.counters.sendsOut += batch.messages.length;
    batch.resolve();
  }

  #failed(batch: Batch, err: unknown): void {
    this.counters.failures += batch.calls;
    batch.reject(err);
  }

  /** Batch `seq` of `queue` is settled: the queue sends its next one, or is forgotten when idle. */
  #next(queue: KeywordQueue, seq: number): void {
    queue.inFlight--;
    if (queue.alone === seq) queue.alone = 0;
    if (queue.pending.length > 0) this.#schedule(queue);
    else if (queue.inFlight === 0) {
      this.#queues.delete(queue.key);
      if (this.#last === queue) this.#last = undefined;
    }
  }

  /**
   * Whether batch `seq` of `queue` may be sent again (nothing was delivered): only when no batch was
   * sent after it, and then none is until it settles, so that nothing overtakes it.
   */
  #mayRetry(queue: KeywordQueue, seq: number): boolean {
    if (queue.sent !== seq) return false;
    queue.alone = seq;
    return true;
  }

  /**
   * Several keywords' batches in one request to their node. A keyword the node no longer holds
   * (it moved), or a node that is gone, sends its batch again to the keyword's own subject.
   */
  async #sendToNode(node: string, group: NodeEntry[]): Promise<void> {
    this.counters.nodeRequests++;
    let results: Uint8Array[] | undefined;
    try {
      const reply = await this.#nc.request(`${this.#prefix}n.${node}`, encodeMulti(group), {
        timeout: this.#timeoutMs,
      });
      results = decodeResults(reply.data, group.length);
    } catch (err) {
      // No responders: the node left, and delivered nothing; each keyword asks its own subject.
      // Anything else (a timeout, a lost connection, a malformed answer) may have delivered: no retry.
      if (!isNoResponders(err)) {
        for (const { queue, batch, seq } of group) {
          const name = `keyword ${describeKeyword(queue.keyword)}`;
          this.#failed(batch, isTimeout(err) ? this.#timeout(name, err) : err);
          this.#next(queue, seq);
        }
        return;
      }
    }
    for (let i = 0; i < group.length; i++) {
      const { queue, batch, body, seq } = group[i]!;
      const reply = results?.[i];
      if (reply && (reply[0] !== Reply.offline || !this.#mayRetry(queue, seq))) {
        const err = this.#replyError(queue, reply);
        if (err) this.#failed(batch, err);
        else this.#sent(batch);
        this.#next(queue, seq);
        continue;
      }
      this.#routes.delete(queue.token);
      if (!reply && !this.#mayRetry(queue, seq)) {
        // The node left, and a later batch is on its way: this one must not arrive after it.
        this.#failed(
          batch,
          new ClientNotConnectedError(
            `Cannot send to keyword ${describeKeyword(queue.keyword)}: no node holds it`,
          ),
        );
        this.#next(queue, seq);
        continue;
      }
      void this.#run(queue, seq, batch, () => this.#requestOk(queue, seq, body));
    }
  }

  /** One call too large for one request: its messages in requests of their own, a large one in parts. */
  async #sendLarge(queue: KeywordQueue, seq: number, messages: Uint8Array[], max: number): Promise<void> {
    for (const message of messages) {
      if (message.length + 5 <= max) {
        await this.#requestOk(queue, seq, encodeBatch([message], message.length + 5));
        continue;
      }
      const room = max - 10;
      for (let at = 0; at < message.length; at += room) {
        const chunk = message.subarray(at, at + room);
        const body = new Uint8Array(10 + chunk.length);
        body[0] = Op.part;
        body[1] = (at === 0 ? PART_FIRST : 0) | (at + room >= message.length ? PART_LAST : 0);
        body.set(this.#partId, 2);
        body.set(chunk, 10);
        await this.#requestOk(queue, seq, body);
      }
    }
  }

  /** A request to the keyword's subject whose reply must say ok; anything else becomes the error it names. */
  async #requestOk(queue: KeywordQueue, seq: number, body: Uint8Array): Promise<void> {
    this.counters.keywordRequests++;
    const mayRetry = () => this.#mayRetry(queue, seq);
    let reply = await this.request(queue.subject, body, queue.keyword, mayRetry);
    // A node letting go of the keyword answers "offline" while its subscription drains; the client
    // may be connecting elsewhere that moment, so ask again briefly, as after "no responders".
    // Only whole messages: a part is not sent twice (it would join another node's message).
    const retry = body[0] === Op.messages;
    for (
      let attempt = 0;
      retry && reply[0] === Reply.offline && attempt < NO_RESPONDERS_RETRY_MS.length && mayRetry();
      attempt++
    ) {
      await new Promise((resolve) => setTimeout(resolve, NO_RESPONDERS_RETRY_MS[attempt]));
      this.counters.keywordRequests++;
      reply = await this.request(queue.subject, body, queue.keyword, mayRetry);
    }
    const err = this.#replyError(queue, reply);
    if (err) throw err;
    // The holder names itself in its ok: the keyword's next batches go with others to that node.
    if (reply.length > 1) this.#learn(queue.token, decoder.decode(reply.subarray(1)));
  }

  /** Remembers `token`'s node, forgetting the oldest beyond {@linkcode MAX_ROUTES}. */
  #learn(token: string, node: string): void {
    if (this.#routes.get(token) === node) return;
    this.#routes.delete(token);
    if (this.#routes.size >= MAX_ROUTES) this.#routes.delete(this.#routes.keys().next().value!);
    this.#routes.set(token, node);
  }

  /** The error a reply names, or `undefined` for ok. */
  #replyError(queue: KeywordQueue, reply: Uint8Array): Error | undefined {
    if (reply.length === 0 || reply[0] === Reply.ok) return undefined;
    const why = decoder.decode(reply.subarray(1));
    const keyword = describeKeyword(queue.keyword);
    switch (reply[0]) {
      case Reply.offline:
        return new ClientNotConnectedError(`Cannot send to keyword ${keyword}: ${why}`);
      case Reply.bufferFull:
        return new SendBufferFullError(`Cannot send to keyword ${keyword}: ${why}`);
      case Reply.tooLarge:
        return new MessageTooLargeError(0n, this.#maxMessageBytes(), {
          message: `Cannot send to keyword ${keyword}: ${why}`,
        });
      default:
        return new Error(`Cannot send to keyword ${keyword}: the holding node failed: ${why}`);
    }
  }
}

/** True when `a` and `b` hold the same bytes. */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
