/**
 * {@linkcode natsCluster}: cores in several processes or machines reach each other's named clients
 * over NATS. Each node subscribes to one subject per keyword it holds; a send is a NATS request to
 * that subject, so NATS's interest graph is the directory, and "no responders" means offline.
 *
 * It takes a connection the application opened with nats.js (`nats` v2, or `@nats-io/transport-*`
 * v3), typed by the few members it uses, so asockio itself depends on no NATS package.
 *
 * @example Two workers, one cluster
 * ```ts ignore
 * import { connect } from "nats";
 * import { IoCore } from "@asockio/core";
 * import { natsCluster } from "@asockio/core/cluster";
 *
 * const nc = await connect({ servers: "127.0.0.1:4222" });
 * const core = new IoCore({
 *   listeners: [{ transport: "tcp", port: 25000 }],
 *   acceptUnexpectedKeywords: "adopt",
 *   cluster: natsCluster(nc, { name: "gateway" }),
 * });
 * await core.listen();
 * await core.sendMessageToKeyword("sensor-17", "ping"); // wherever sensor-17 is connected
 * ```
 *
 * @module
 */
import { ClientNotConnectedError, MessageTooLargeError } from "../core/errors.ts";
import type {
  ClusterBus,
  ClusterHost,
  ClusterRefusal,
  ClusterStats,
  KeywordLocation,
} from "../core/clients/cluster_bus.ts";
import { PROCESS_NODE } from "../core/engine/keyword_router.ts";
import { unrefTimer } from "../core/timer.ts";
import { boolean, callable, integer, optionsOf, required, text, typeError } from "../core/options_check.ts";
import { type ClaimResult, ClaimStore, type NatsKvOpener } from "./_nats_claims.ts";
import { NatsSender } from "./_nats_sender.ts";
import {
  concat,
  decodeBatch,
  decodeMulti,
  encodeResults,
  failure,
  hex,
  keywordToken,
  Op,
  PART_FIRST,
  PART_LAST,
  Reply,
} from "./_nats_wire.ts";

export type { NatsKvEntryLike, NatsKvLike, NatsKvOpener } from "./_nats_claims.ts";

/** A received NATS message, as nats.js gives it: its bytes and a way to answer. */
export interface NatsMsgLike {
  /** The request's bytes. */
  readonly data: Uint8Array;
  /** Answers the request. */
  respond(data?: Uint8Array): boolean;
}

/** A NATS subscription, as nats.js returns it. */
export interface NatsSubscriptionLike {
  /** Ends the subscription. */
  unsubscribe(): void;
  /** Ends it once the server has stopped routing to it, handing what was in flight to the callback. */
  drain?(): Promise<void>;
}

/**
 * The members of a nats.js connection (`NatsConnection` of `nats` v2 or `@nats-io/transport-*` v3)
 * that {@linkcode natsCluster} uses.
 */
export interface NatsConnectionLike {
  /** Subscribes to `subject` (in a queue group), each message to `callback`. */
  subscribe(
    subject: string,
    options: { queue?: string; callback: (err: unknown, msg: NatsMsgLike) => void },
  ): NatsSubscriptionLike;
  /** Sends a request and resolves with the first reply; rejects on "no responders" or a timeout. */
  request(subject: string, data: Uint8Array, options: { timeout: number }): Promise<{ data: Uint8Array }>;
  /** Resolves once the server has processed everything sent so far. */
  flush(): Promise<void>;
  /** The server's INFO; its `max_payload` sizes the requests. */
  readonly info?: { readonly max_payload?: number } | undefined;
  /** The connection's events; after a `"reconnect"` the held keywords are claimed again. */
  status?(): AsyncIterable<{ readonly type: string }>;
  /** `nats` v2: JetStream, whose KV views hold the keyword claims (v3: pass `options.kv`). */
  jetstream?(): { views: { kv: NatsKvOpener } };
}

/** The options of {@linkcode natsCluster}. */
export interface NatsClusterOptions {
  /**
   * The cluster's name: it separates clusters on one NATS system, and is the second token of every
   * subject (`asockio.<name>.…`). Letters, digits, `-` and `_`.
   */
  name: string;
  /**
   * This node's name, unique in the cluster (reported by `locateKeyword` and `stats().cluster`).
   * @default {a name unique to this process, such as "node-1a2b3c4d"}
   */
  node?: string;
  /**
   * How long a send waits for the holding node's answer before it rejects with `TimeoutError`.
   * @default {5000}
   */
  requestTimeoutMs?: number;
  /**
   * Claim each held keyword in a JetStream KV bucket, so that `duplicateKeyword` holds across the
   * cluster (see {@linkcode natsCluster}). Without JetStream on the server the claims are skipped
   * with a warning.
   * @default {true}
   */
  claims?: boolean;
  /**
   * How soon a held keyword that went unclaimed (the claim store not open yet, as on a fresh
   * server's JetStream) is claimed again, the store opened again first; repeated while its
   * connection lasts.
   * @default {2000}
   */
  claimRetryMs?: number;
  /**
   * Opens a KV bucket: with `@nats-io/kv` (v3), `(bucket, opts) => new Kvm(nc).create(bucket, opts)`.
   * @default {(bucket, opts) => nc.jetstream().views.kv(bucket, opts), with nats v2}
   */
  kv?: NatsKvOpener;
}

const NATS_CLUSTER_OPTIONS = optionsOf("natsCluster option", {
  name: required(text),
  node: text,
  requestTimeoutMs: integer(1, 2_147_483_647),
  claims: boolean,
  claimRetryMs: integer(1, 2_147_483_647),
  kv: callable,
});

/** The longest a handshake waits for its claim before `OK`; a slower store admits, and claims later. */
const ADMIT_WAIT_MS = 2000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A {@linkcode ClusterBus} over NATS, for `IoCoreOptions.cluster`. `nc` stays the application's:
 * the core's `close()` unsubscribes, and does not close it.
 *
 * Delivery is at most once. A send resolves once the holding node queued its messages; it rejects
 * with `ClientNotConnectedError` when no node holds the keyword (after retrying for about 25 ms,
 * unless a later request for the keyword is already on its way: the retry would overtake it), or
 * `TimeoutError` after `requestTimeoutMs`, when the messages may or may not have been queued.
 * Sends from one node to one keyword arrive in the order made; up to two requests per keyword are
 * in flight, and sends made meanwhile travel together in the next. Batches for several keywords held by one node travel in
 * one request to that node (its node name is learned from its answers; a keyword that moved is
 * asked for on its own subject again). A message larger than the server's `max_payload` travels
 * in parts and is put together on the holding node (up to its `limits.maxMessageBytes`).
 *
 * Each held keyword is claimed in a JetStream KV bucket (`asockio_<name>_keywords`; `create` is
 * atomic, so of two nodes claiming at once one wins), and each node writes a heartbeat every 2 s
 * into `asockio_<name>_nodes`, whose entries expire after 6 s. An incoming connection is claimed
 * before its handshake's `OK`: when another live node holds the keyword, `duplicateKeyword:
 * "refuse"` refuses it (the peer's handshake fails with `HandshakeRejectedError`, reason
 * `duplicate keyword`), and `"replace"` takes the claim and closes the other node's connection. A
 * claim whose node's heartbeat expired (the node died, or lost NATS), or whose node answers that
 * its connection ended (a device that moved before the claim was deleted), is taken over. When the store
 * does not answer within 2 s (or `requestTimeoutMs`, if shorter), the connection is admitted as
 * a standalone core would admit it, and a conflict found later closes it (`duplicate keyword`). Without JetStream the claims are skipped with one warning: a keyword connected on two
 * nodes is then not refused, and each send reaches one of them (a queue group), never both.
 *
 * @param nc A connected nats.js connection.
 * @param options The cluster's name; this node's name; the request timeout.
 * @returns The bus, for one core.
 * @throws {TypeError} For a missing or malformed name, or an unknown option.
 *
 * @example
 * ```ts ignore
 * import { connect } from "nats";
 * import { IoCore } from "@asockio/core";
 * import { natsCluster } from "@asockio/core/cluster";
 * const core = new IoCore({
 *   cluster: natsCluster(await connect({ servers: "127.0.0.1:4222" }), { name: "gateway", node: "eu-1" }),
 * });
 * ```
 */
export function natsCluster(nc: NatsConnectionLike, options: NatsClusterOptions): ClusterBus {
  if (
    typeof nc !== "object" || nc === null || typeof nc.subscribe !== "function" ||
    typeof nc.request !== "function"
  ) throw typeError("create NATS cluster", "nc", "a nats.js connection", nc);
  NATS_CLUSTER_OPTIONS(options, "options", "create NATS cluster");
  for (const at of ["name", "node"] as const) {
    const value = options[at];
    if (value !== undefined && !/^[A-Za-z0-9_-]+$/.test(value)) {
      throw new TypeError(
        `Cannot create NATS cluster: options.${at} must be letters, digits, "-" or "_", got ${
          JSON.stringify(value)
        }`,
      );
    }
  }
  return new NatsClusterBus(nc, options);
}

class NatsClusterBus implements ClusterBus {
  readonly node: string;
  readonly #nc: NatsConnectionLike;
  readonly #prefix: string;
  readonly #timeoutMs: number;
  /** Sends by keyword: in order per keyword, together per node. */
  readonly #sender: NatsSender;
  /** This node's answer to a request it carried out: ok, and its name (senders learn where a keyword is). */
  readonly #ok: Uint8Array;
  #host: ClusterHost | undefined = undefined;
  readonly #name: string;
  readonly #claimsWanted: boolean;
  /** How long after a keyword went unclaimed (the store not open) it is claimed again. */
  readonly #claimRetryMs: number;
  readonly #kv: NatsKvOpener | undefined;
  #claims: ClaimStore | undefined = undefined;
  /** Per keyword token: its claim and release, one after the other. */
  readonly #chains = new Map<string, Promise<void>>();
  /** This node's own subject (evictions). */
  #own: NatsSubscriptionLike | undefined = undefined;
  readonly #subscriptions = new Map<string, NatsSubscriptionLike>();
  /** Large messages being put together, by sender and keyword. */
  readonly #parts = new Map<string, { chunks: Uint8Array[]; bytes: number }>();
  #warned = false;
  #detached = false;
  /** Keyword tokens claimed by `admit` before `OK`, and not yet `claim`ed (or `release`d). */
  readonly #reserved = new Set<string>();
  /** Keyword tokens `admit` is claiming now. */
  readonly #claiming = new Set<string>();
  /** Keywords that went unclaimed, to claim again (see `#claimLater`). */
  readonly #unclaimed = new Map<string, { keyword: Uint8Array; sub: NatsSubscriptionLike }>();
  #retry: ReturnType<typeof setTimeout> | undefined = undefined;
  /** Held keywords by token, for claiming again. */
  readonly #keywords = new Map<string, Uint8Array>();
  /** Keyword tokens held: subscribed, and claimed when there are claims. */
  readonly #held = new Set<string>();
  #sendsIn = 0;
  #failures = 0;

  constructor(nc: NatsConnectionLike, options: NatsClusterOptions) {
    this.#nc = nc;
    this.node = options.node ?? PROCESS_NODE;
    this.#prefix = `asockio.${options.name}.`;
    this.#timeoutMs = options.requestTimeoutMs ?? 5000;
    const partId = crypto.getRandomValues(new Uint8Array(8));
    this.#sender = new NatsSender(
      nc,
      this.#prefix,
      this.#timeoutMs,
      partId,
      () => this.#host?.maxMessageBytes ?? 0,
    );
    const node = encoder.encode(this.node);
    this.#ok = new Uint8Array(1 + node.length);
    this.#ok.set(node, 1);
    this.#name = options.name;
    this.#claimsWanted = options.claims ?? true;
    this.#claimRetryMs = options.claimRetryMs ?? 2000;
    const nc2 = typeof nc.jetstream === "function" ? nc : undefined;
    this.#kv = options.kv ?? (nc2 && ((bucket, opts) => nc2.jetstream!().views.kv(bucket, opts)));
  }

  attach(host: ClusterHost): void {
    if (this.#host) throw new TypeError("Cannot attach a core to a NATS cluster bus: it serves another core");
    this.#host = host;
    if (this.#claimsWanted) {
      const open: NatsKvOpener = this.#kv ??
        (() => Promise.reject(new TypeError("the connection has no jetstream(); pass options.kv")));
      this.#claims = new ClaimStore(
        open,
        this.#name,
        this.node,
        this.#claimRetryMs,
        (owner, key) => this.#holds(owner, key),
      );
    }
    if (this.#claims && typeof this.#nc.status === "function") void this.#watch(this.#nc.status());
    this.#own = this.#nc.subscribe(`${this.#prefix}n.${this.node}`, {
      callback: (err, msg) => {
        if (err) return;
        if (msg.data[0] === Op.multi) return this.#answerMulti(msg);
        if (msg.data[0] === Op.holds) {
          const token = decoder.decode(msg.data.subarray(1));
          const holds = this.#subscriptions.has(token) || this.#reserved.has(token) ||
            this.#claiming.has(token);
          return void msg.respond(new Uint8Array([holds ? Reply.ok : Reply.offline]));
        }
        if (msg.data[0] !== Op.evict) return;
        const keyword = msg.data.slice(1);
        this.release(keyword);
        host.drop(keyword, 'duplicate keyword: another node took it over (duplicateKeyword: "replace")');
        msg.respond(new Uint8Array([Reply.ok]));
      },
    });
  }

  async detach(): Promise<void> {
    for (const sub of this.#subscriptions.values()) sub.unsubscribe();
    this.#detached = true;
    this.#subscriptions.clear();
    this.#keywords.clear();
    this.#held.clear();
    this.#reserved.clear();
    this.#unclaimed.clear();
    clearTimeout(this.#retry);
    this.#own?.unsubscribe();
    this.#parts.clear();
    await Promise.all(this.#chains.values());
    await this.#claims?.close();
    await this.#nc.flush().catch(() => {}); // a closed connection has no subscriptions left anyway
  }

  admit(keyword: Uint8Array): Promise<ClusterRefusal | undefined> {
    const claims = this.#claims;
    const host = this.#host;
    const token = keywordToken(keyword);
    if (!claims || !host || this.#detached || this.#subscriptions.has(token)) {
      return Promise.resolve(undefined);
    }
    return new Promise((resolve) => {
      let waiting = true;
      const done = (answer: ClusterRefusal | undefined) => {
        if (!waiting) return;
        waiting = false;
        clearTimeout(timer);
        resolve(answer);
      };
      // A store that is slow or away (NATS reconnecting) does not hold the handshake: the
      // connection is admitted, and `claim` settles the keyword's claim afterwards.
      const timer = setTimeout(() => done(undefined), Math.min(this.#timeoutMs, ADMIT_WAIT_MS));
      this.#then(token, async () => {
        let result: ClaimResult;
        this.#claiming.add(token); // held for another node's question from here on (see `#holds`)
        try {
          result = await claims.claim(token, host.replaceDuplicates);
          if (result.kind === "refused") return done({ reason: "duplicate keyword", node: result.owner });
          if (result.kind === "unclaimed") this.#warnUnclaimed(claims);
          if (result.kind === "replaced") await this.#evict(keyword, result.owner);
          if (waiting && result.kind !== "unclaimed") this.#reserved.add(token); // else claimed after OK
          done(undefined);
        } catch {
          done(undefined); // `claim` tries again, and warns
        } finally {
          this.#claiming.delete(token);
        }
      });
    });
  }

  claim(keyword: Uint8Array): void {
    const token = keywordToken(keyword);
    if (this.#subscriptions.has(token)) return;
    const sub = this.#nc.subscribe(this.#prefix + token, {
      queue: "holder",
      callback: (err, msg) => {
        if (!err) this.#answer(keyword, token, msg);
      },
    });
    this.#subscriptions.set(token, sub);
    this.#keywords.set(token, keyword.slice());
    const claims = this.#claims;
    if (claims && !this.#reserved.delete(token)) {
      this.#then(token, () => this.#claim(claims, keyword, token, sub));
    } else this.#held.add(token);
  }

  /**
   * Claims every held keyword again after NATS comes back: what changed while it was away (a claim
   * taken over, a conflicting connection elsewhere) is settled as a new claim would be.
   */
  async #watch(events: AsyncIterable<{ readonly type: string }>): Promise<void> {
    try {
      for await (const event of events) {
        if (this.#detached) return;
        if (event.type !== "reconnect") continue;
        const claims = this.#claims!;
        for (const [token, sub] of this.#subscriptions) {
          const keyword = this.#keywords.get(token)!;
          this.#then(token, () => this.#claim(claims, keyword, token, sub));
        }
      }
    } catch {
      // The connection closed: nothing more to watch.
    }
  }

  /** Runs `step` after the keyword's earlier claim or release. */
  #then(token: string, step: () => Promise<void>): void {
    const chain = (this.#chains.get(token) ?? Promise.resolve()).then(step).catch((err) => {
      this.#failures++;
      this.#host?.warn(`Cannot claim keyword in the NATS cluster ${this.#name}; trying again in 1 s`, err);
      // Still held here: claim it again once the store answers (a restarted server, a lost bucket).
      this.#claims?.reopen();
      const sub = this.#subscriptions.get(token);
      const keyword = this.#keywords.get(token);
      const timer = setTimeout(() => {
        const claims = this.#claims;
        if (claims && sub && keyword && this.#subscriptions.get(token) === sub) {
          this.#then(token, () => this.#claim(claims, keyword, token, sub));
        }
      }, 1000);
      (timer as { unref?: () => void }).unref?.();
    });
    this.#chains.set(token, chain);
    void chain.then(() => {
      if (this.#chains.get(token) === chain) this.#chains.delete(token);
    });
  }

  async #claim(
    claims: ClaimStore,
    keyword: Uint8Array,
    token: string,
    sub: NatsSubscriptionLike,
  ): Promise<void> {
    const host = this.#host!;
    const result = await claims.claim(token, host.replaceDuplicates);
    if (result.kind !== "refused" && this.#subscriptions.get(token) === sub) this.#held.add(token);
    if (result.kind === "unclaimed") {
      this.#warnUnclaimed(claims);
      this.#claimLater(claims, keyword, token, sub);
    } else if (result.kind === "refused") {
      if (this.#subscriptions.get(token) === sub) this.release(keyword);
      host.drop(keyword, `duplicate keyword: node ${result.owner} holds it`);
    } else if (result.kind === "replaced") await this.#evict(keyword, result.owner);
  }

  /**
   * A keyword went unclaimed (the store not open yet: a fresh server's JetStream, or none at all):
   * it is claimed again in `claimRetryMs`, all such keywords together, while its connection lasts,
   * so a store that becomes ready later holds it and a duplicate elsewhere is then refused.
   */
  #claimLater(claims: ClaimStore, keyword: Uint8Array, token: string, sub: NatsSubscriptionLike): void {
    this.#unclaimed.set(token, { keyword, sub });
    this.#retry ??= unrefTimer(setTimeout(() => {
      this.#retry = undefined;
      const pending = [...this.#unclaimed];
      this.#unclaimed.clear();
      for (const [token, { keyword, sub }] of pending) {
        if (this.#detached || this.#subscriptions.get(token) !== sub) continue;
        this.#then(token, () => this.#claim(claims, keyword, token, sub));
      }
    }, this.#claimRetryMs));
  }

  /** Warns once that keywords go unclaimed (no JetStream). */
  #warnUnclaimed(claims: ClaimStore): void {
    if (this.#warned) return;
    this.#warned = true;
    this.#host?.warn(
      `NATS cluster ${this.#name}: keywords are not claimed (is JetStream enabled on the server?); a keyword connected on two nodes is not refused`,
      claims.unavailable,
    );
  }

  /**
   * Whether live node `owner` still holds the keyword of claim `token`, as it answers on its own
   * subject. No answer (a slow node, one cut off from NATS until its heartbeat expires) counts as
   * holding: a claim is refused rather than held twice.
   */
  async #holds(owner: string, token: string): Promise<boolean> {
    const body = encoder.encode("_" + token);
    body[0] = Op.holds;
    const timeout = Math.min(this.#timeoutMs, ADMIT_WAIT_MS / 2);
    return await this.#nc.request(`${this.#prefix}n.${owner}`, body, { timeout }).then(
      (reply) => reply.data[0] !== Reply.offline,
      () => true,
    );
  }

  /** `duplicateKeyword: "replace"` took `keyword` from `owner`: its connection there closes. */
  async #evict(keyword: Uint8Array, owner: string): Promise<void> {
    const body = new Uint8Array(1 + keyword.length);
    body[0] = Op.evict;
    body.set(keyword, 1);
    await this.#nc.request(`${this.#prefix}n.${owner}`, body, { timeout: this.#timeoutMs }).catch(() => {
      // The old holder is gone or slow: its claim is ours already, and its connection goes with it.
    });
  }

  release(keyword: Uint8Array): void {
    const token = keywordToken(keyword);
    const sub = this.#subscriptions.get(token);
    if (!sub) {
      // Claimed before `OK`, and the connection ended before it was held.
      const claims = this.#claims;
      if (this.#reserved.delete(token) && claims) this.#then(token, () => claims.release(token));
      return;
    }
    // Draining, not unsubscribing: a request the server routed here meanwhile gets "offline" (the
    // client is gone), not silence and a TimeoutError at the sender.
    if (typeof sub.drain === "function") sub.drain().catch(() => sub.unsubscribe());
    else sub.unsubscribe();
    this.#subscriptions.delete(token);
    this.#keywords.delete(token);
    this.#held.delete(token);
    const claims = this.#claims;
    if (claims) this.#then(token, () => claims.release(token));
    for (const key of this.#parts.keys()) {
      if (key.endsWith(token) && key.length === token.length + 16) this.#parts.delete(key);
    }
  }

  send(keyword: Uint8Array, messages: Uint8Array[]): Promise<void> {
    return this.#sender.send(keyword, messages);
  }

  async locate(keyword: Uint8Array): Promise<KeywordLocation | undefined> {
    const reply = await this.#sender.request(
      this.#prefix + keywordToken(keyword),
      new Uint8Array([Op.locate]),
    )
      .catch((err) => {
        if (err instanceof ClientNotConnectedError) return undefined;
        throw err;
      });
    if (!reply || reply[0] !== Reply.ok) return undefined;
    return { node: decoder.decode(reply.subarray(1)) };
  }

  stats(): ClusterStats {
    return {
      node: this.node,
      keywordsHeld: this.#held.size,
      sendsOut: this.#sender.counters.sendsOut,
      sendsIn: this.#sendsIn,
      failures: this.#failures + this.#sender.counters.failures,
    };
  }

  /** Answers a request for a keyword this node holds. */
  #answer(keyword: Uint8Array, token: string, msg: NatsMsgLike): void {
    const host = this.#host;
    const data = msg.data;
    try {
      if (!host || data.length === 0) throw new ClientNotConnectedError("this node is leaving the cluster");
      if (data[0] === Op.locate) {
        // A subscription draining after its client left still gets requests: not held here anymore.
        if (!this.#subscriptions.has(token)) throw new ClientNotConnectedError("the client left this node");
        return void msg.respond(this.#ok);
      }
      let messages: Uint8Array[];
      if (data[0] === Op.part) {
        const key = hex(data.subarray(2, 10)) + token;
        let partial = this.#parts.get(key);
        // A first part starts afresh: what a sender left unfinished (it failed, or timed out) is dropped.
        if (data[1]! & PART_FIRST) this.#parts.set(key, partial = { chunks: [], bytes: 0 });
        else if (!partial) throw new Error("a part of a message came without its first part");
        partial.chunks.push(data.slice(10));
        partial.bytes += data.length - 10;
        if (partial.bytes > host.maxMessageBytes) {
          this.#parts.delete(key);
          throw new MessageTooLargeError(BigInt(partial.bytes), host.maxMessageBytes, {
            message: `the message is over maxMessageBytes ${host.maxMessageBytes} of the holding node`,
          });
        }
        if (!(data[1]! & PART_LAST)) return void msg.respond(this.#ok);
        this.#parts.delete(key);
        messages = [concat(partial.chunks, partial.bytes)];
      } else messages = decodeBatch(data);
      host.deliver(keyword, messages);
      this.#sendsIn += messages.length;
      msg.respond(this.#ok);
    } catch (err) {
      const { code, why } = failure(err);
      const reply = new Uint8Array(1 + why.length);
      reply[0] = code;
      reply.set(why, 1);
      msg.respond(reply);
    }
  }

  /** Answers a request to this node's subject carrying several keywords' batches, one result each. */
  #answerMulti(msg: NatsMsgLike): void {
    const host = this.#host;
    let entries: ReturnType<typeof decodeMulti>;
    try {
      entries = decodeMulti(msg.data);
    } catch {
      return void msg.respond(new Uint8Array([Reply.failed])); // the sender asks each keyword's subject
    }
    const results = entries.map(({ keyword, messages }) => {
      try {
        if (!host) throw new ClientNotConnectedError("this node is leaving the cluster");
        host.deliver(keyword, messages);
        this.#sendsIn += messages.length;
        return { code: Reply.ok as number, why: new Uint8Array(0) };
      } catch (err) {
        return failure(err);
      }
    });
    msg.respond(encodeResults(results));
  }
}
