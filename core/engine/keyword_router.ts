/**
 * {@linkcode KeywordRouter}: sends addressed by keyword (`IoCore.sendMessagesToKeyword`), to a
 * client of this core or, through a {@linkcode ClusterBus}, to one held by another node; and the
 * keywords this core claims on the bus as its named clients come and go.
 *
 * @module
 */
import { ClientNotConnectedError, ConnectionClosedError, MessageTooLargeError } from "../errors.ts";
import { Phase } from "../connection/session.ts";
import { type ClientRecord, type ClientRegistry, keywordKey } from "../clients/client_registry.ts";
import { toBytes } from "../wire/bytes.ts";
import type {
  ClusterBus,
  ClusterHost,
  ClusterRefusal,
  ClusterStats,
  KeywordLocation,
} from "../clients/cluster_bus.ts";
import type { ClientId } from "../types.ts";
import type { Logger } from "../options.ts";

/** This process's default node name: unique per process, the same for every core in it. */
export const PROCESS_NODE = `node-${crypto.randomUUID().slice(0, 8)}`;

/** A keyword for messages: as text when it is UTF-8, else as its byte count. */
export function describeKeyword(keyword: Uint8Array): string {
  try {
    return JSON.stringify(new TextDecoder("utf-8", { fatal: true }).decode(keyword));
  } catch {
    return `of ${keyword.length} bytes (not UTF-8)`;
  }
}

/** What the router needs of the core. */
export interface KeywordRouterDeps {
  readonly registry: ClientRegistry;
  /** Queues messages for a client, as `sendMessagesToClient` does (throws as it does). */
  readonly sendMany: (id: ClientId, messages: Uint8Array[]) => void;
  readonly maxMessageBytes: number;
  readonly cluster: ClusterBus | undefined;
  /** `duplicateKeyword: "replace"`. */
  readonly replaceDuplicates: boolean;
  readonly logger: Logger;
}

/** Sends by keyword, locally or through the cluster; claims the keywords of this core's named clients. */
export class KeywordRouter implements ClusterHost {
  readonly node: string;
  readonly maxMessageBytes: number;
  readonly replaceDuplicates: boolean;
  readonly #logger: Logger;
  readonly #registry: ClientRegistry;
  readonly #sendMany: (id: ClientId, messages: Uint8Array[]) => void;
  readonly #cluster: ClusterBus | undefined;
  /** Keyword keys claimed on the bus. */
  readonly #claimed = new Set<string>();
  /** Keyword keys whose incoming connection waits for the cluster's answer before its `OK`. */
  readonly #admitting = new Set<string>();
  /** The last text keyword sent to, its bytes and key: a burst of sends to one keyword encodes it once. */
  #lastText: string | undefined = undefined;
  #lastBytes: Uint8Array = new Uint8Array(0);
  #lastKey = "";

  /** A router over `deps.registry`; attaches to `deps.cluster` when one is given. */
  constructor(deps: KeywordRouterDeps) {
    this.#registry = deps.registry;
    this.#sendMany = deps.sendMany;
    this.maxMessageBytes = deps.maxMessageBytes;
    this.replaceDuplicates = deps.replaceDuplicates;
    this.#logger = deps.logger;
    this.#cluster = deps.cluster;
    this.node = deps.cluster?.node ?? PROCESS_NODE;
    deps.cluster?.attach(this);
  }

  /** The client of this core that a send to `key` reaches: connected, or outgoing (its send buffer). */
  #local(key: string): ClientRecord | undefined {
    const record = this.#registry.byKeyword(key);
    if (record === undefined || record.removed) return undefined;
    return record.connect || record.session?.phase === Phase.open ? record : undefined;
  }

  /** Sends `messages` to the client holding `keyword` (bytes, or text as UTF-8), here or on another node. */
  send(text: Uint8Array | string, messages: Uint8Array[]): Promise<void> {
    let keyword = text as Uint8Array;
    let key: string;
    if (typeof text !== "string") key = keywordKey(keyword);
    else {
      if (text !== this.#lastText) {
        this.#lastBytes = toBytes(text); // a view of its own, never written again
        this.#lastKey = keywordKey(this.#lastBytes);
        this.#lastText = text;
      }
      keyword = this.#lastBytes;
      key = this.#lastKey;
    }
    const record = this.#local(key);
    if (record) {
      try {
        this.#sendMany(record.id, messages);
        return Promise.resolve();
      } catch (err) {
        return Promise.reject(this.#offline(err, keyword));
      }
    }
    if (this.#cluster) return this.#cluster.send(keyword, messages);
    return Promise.reject(this.#offline(undefined, keyword));
  }

  /** Where `keyword`'s client is connected: this node, another, or `undefined`. */
  locate(keyword: Uint8Array): Promise<KeywordLocation | undefined> {
    const record = this.#registry.byKeyword(keywordKey(keyword));
    if (record?.session?.phase === Phase.open) return Promise.resolve({ node: this.node });
    return this.#cluster ? this.#cluster.locate(keyword) : Promise.resolve(undefined);
  }

  /** A send from another node, for a client of this core (see `ClusterHost.deliver`). */
  deliver(keyword: Uint8Array, messages: Uint8Array[]): void {
    const record = this.#local(keywordKey(keyword));
    if (!record) throw this.#offline(undefined, keyword);
    for (const message of messages) {
      if (message.length > this.maxMessageBytes) {
        throw new MessageTooLargeError(BigInt(message.length), this.maxMessageBytes, {
          message: `Cannot deliver message to keyword ${
            describeKeyword(keyword)
          }: it is ${message.length} bytes, more than maxMessageBytes ${this.maxMessageBytes}`,
        });
      }
    }
    try {
      this.#sendMany(record.id, messages);
    } catch (err) {
      throw this.#offline(err, keyword);
    }
  }

  /** Another node holds the keyword: this core's connection for it closes (see `ClusterHost.drop`). */
  drop(keyword: Uint8Array, reason: string): void {
    const session = this.#registry.byKeyword(keywordKey(keyword))?.session;
    if (!session) return;
    this.#logger.info?.(`Closing the connection of keyword ${describeKeyword(keyword)}: ${reason}`);
    session.close(
      new ConnectionClosedError(`Closed the connection of keyword ${describeKeyword(keyword)}: ${reason}`),
    );
  }

  /** A cluster's warning, through the core's logger. */
  warn(message: string, error?: unknown): void {
    if (error === undefined) this.#logger.warn?.(message);
    else this.#logger.warn?.(message, error);
  }

  /**
   * Accepting side, before `OK`: asks the cluster whether another node holds `keyword` (see
   * `ClusterBus.admit`); `undefined` when there is nothing to ask. Until it answers, another
   * connection announcing the keyword here is a duplicate ({@linkcode KeywordRouter.admitting}).
   */
  admit(keyword: Uint8Array): Promise<ClusterRefusal | undefined> | undefined {
    const bus = this.#cluster;
    if (!bus?.admit) return undefined;
    const key = keywordKey(keyword);
    this.#admitting.add(key);
    return bus.admit(keyword);
  }

  /** True while the cluster is asked about `keyword` for a connection of this core. */
  admitting(keyword: Uint8Array): boolean {
    return this.#admitting.size > 0 && this.#admitting.has(keywordKey(keyword));
  }

  /**
   * The cluster admitted `keyword` ({@linkcode KeywordRouter.admit}) or refused it. `abandoned`:
   * the connection ended while it waited, so a claim the bus made for it is given up.
   */
  admitted(keyword: Uint8Array, abandoned: boolean): void {
    this.#admitting.delete(keywordKey(keyword));
    if (abandoned) this.#cluster?.release(keyword);
  }

  /** A client of this core now answers for its keyword: an outgoing one registered, or one connected. */
  held(record: ClientRecord): void {
    if (!this.#cluster || this.#claimed.has(record.key)) return;
    this.#claimed.add(record.key);
    this.#cluster.claim(record.keyword);
  }

  /** A client's connection ended (`removed`: or the client was removed). Outgoing clients stay held. */
  letGo(record: ClientRecord, removed: boolean): void {
    if (!this.#cluster || (record.connect && !removed)) return;
    if (!this.#claimed.delete(record.key)) return;
    this.#cluster.release(record.keyword);
  }

  /** The cluster's counters, if there is a cluster. */
  stats(): ClusterStats | undefined {
    return this.#cluster?.stats();
  }

  /** Lets go of every keyword (the core closes). */
  detach(): Promise<void> {
    this.#claimed.clear();
    return this.#cluster ? this.#cluster.detach() : Promise.resolve();
  }

  /** A failed send's error: a closed connection becomes `ClientNotConnectedError`; others stay. */
  #offline(err: unknown, keyword: Uint8Array): unknown {
    if (err !== undefined && !(err instanceof ConnectionClosedError)) return err;
    if (err instanceof ClientNotConnectedError) return err;
    return new ClientNotConnectedError(
      `Cannot send to keyword ${describeKeyword(keyword)}: no client with it is connected`,
      err === undefined ? undefined : { cause: err },
    );
  }
}
