/**
 * Cluster-wide keyword claims for {@linkcode natsCluster}, in two JetStream KV buckets: one entry
 * per held keyword (`create` is atomic, so of two nodes claiming at once one wins), and one
 * heartbeat per node in a bucket whose entries expire (`ttl`), so the claims of a node that died
 * can be taken over once its heartbeat is gone, without any per-claim TTL.
 *
 * @module
 */

/** A KV entry, as nats.js gives it. */
export interface NatsKvEntryLike {
  /** The value's bytes. */
  readonly value: Uint8Array;
  /** The entry's revision, for `update` and `delete`. */
  readonly revision: number;
  /** `"PUT"`, or `"DEL"` / `"PURGE"` for a deleted key. */
  readonly operation?: string;
}

/** The members of a nats.js KV handle (`nats` v2 `KV`, `@nats-io/kv` v3 `KV`) the claims use. */
export interface NatsKvLike {
  /** Creates `key` when it does not exist (or was deleted); rejects when it exists. */
  create(key: string, data: Uint8Array): Promise<number>;
  /** Writes `key` when its revision is still `version`; rejects otherwise. */
  update(key: string, data: Uint8Array, version: number): Promise<number>;
  /** Writes `key`. */
  put(key: string, data: Uint8Array): Promise<number>;
  /** The entry of `key`, or null. */
  get(key: string): Promise<NatsKvEntryLike | null>;
  /** Deletes `key`, when its revision is still `previousSeq` if given. */
  delete(key: string, options?: { previousSeq?: number }): Promise<void>;
}

/** Opens (creating if needed) a KV bucket; `ttl` in milliseconds makes its entries expire. */
export type NatsKvOpener = (
  bucket: string,
  options: { ttl?: number; history?: number },
) => Promise<NatsKvLike>;

/** How often a node writes its heartbeat. */
export const HEARTBEAT_MS = 2000;
/** A heartbeat expires this long after it was written: the node is then taken for dead. */
export const HEARTBEAT_TTL_MS = 6000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What a claim ended in. */
export type ClaimResult =
  /** This node holds the keyword (created, already ours, or taken over from a dead node). */
  | { readonly kind: "held" }
  /** A live node holds it, and this one did not take it. */
  | { readonly kind: "refused"; readonly owner: string }
  /** A live node held it, and this one took it over (`duplicateKeyword: "replace"`). */
  | { readonly kind: "replaced"; readonly owner: string }
  /** No claim store (JetStream is not enabled): held without a claim. */
  | { readonly kind: "unclaimed" };

/**
 * Asks live node `owner` whether it still holds the keyword of claim `key`: false when it let the
 * keyword go (its connection ended, and the claim's deletion is on its way) or is not on NATS at all.
 */
export type OwnerHolds = (owner: string, key: string) => Promise<boolean>;

/** The keyword and node buckets of one cluster, and this node's heartbeat. */
export class ClaimStore {
  readonly #node: string;
  readonly #ownerHolds: OwnerHolds;
  readonly #open: () => [Promise<NatsKvLike | undefined>, Promise<NatsKvLike | undefined>];
  #keywords: Promise<NatsKvLike | undefined>;
  #nodes: Promise<NatsKvLike | undefined>;
  #timer: ReturnType<typeof setInterval> | undefined = undefined;
  /** When the buckets were last opened. */
  #openedAt = 0;
  /** Opening the buckets failed: how long until they are tried again. */
  readonly #reopenMs: number;
  /** Why the store could not be opened, once known. */
  unavailable: unknown = undefined;

  /**
   * Opens the buckets of cluster `name` with `open`, and starts this node's heartbeat; when opening
   * fails, a claim opens them again once `reopenMs` have passed. A claim held by a live node is
   * refused only while `ownerHolds` says that node still holds it.
   */
  constructor(
    open: NatsKvOpener,
    name: string,
    node: string,
    reopenMs = 2000,
    ownerHolds: OwnerHolds = () => Promise.resolve(true),
  ) {
    this.#node = node;
    this.#ownerHolds = ownerHolds;
    this.#reopenMs = reopenMs;
    const failed = (err: unknown) => {
      this.unavailable ??= err;
      return undefined;
    };
    this.#open = () => [
      open(`asockio_${name}_keywords`, { history: 1 }).catch(failed),
      open(`asockio_${name}_nodes`, { ttl: HEARTBEAT_TTL_MS, history: 1 }).catch(failed),
    ];
    [this.#keywords, this.#nodes] = this.#open();
    this.#openedAt = Date.now();
    void this.#beat();
    this.#timer = setInterval(() => void this.#beat(), HEARTBEAT_MS);
    (this.#timer as { unref?: () => void }).unref?.();
  }

  /** Writes this node's heartbeat; false when the store did not take it. */
  async #beat(): Promise<boolean> {
    const nodes = await this.#nodes;
    if (!nodes) return false;
    return await nodes.put(this.#node, encoder.encode(String(Date.now()))).then(() => true, () => false);
  }

  /**
   * Opens the buckets again (creating them if needed) after a store operation failed: a NATS server
   * restarted without its JetStream store has lost them.
   */
  reopen(): void {
    this.unavailable = undefined;
    [this.#keywords, this.#nodes] = this.#open();
    this.#openedAt = Date.now();
  }

  /**
   * The keyword bucket, once both are open. Opening failed (JetStream off, or not ready yet: a
   * clustered JetStream elects its leader first)? It is tried again, at most every `reopenMs`.
   */
  async #ready(): Promise<NatsKvLike | undefined> {
    const opened = this.#keywords;
    // (Claims made together all wait for one opening again: the first to find the buckets closed
    // opens them, the others find it done.)
    if ((!(await opened) || !(await this.#nodes)) && this.#keywords === opened) {
      if (Date.now() - this.#openedAt < this.#reopenMs) return undefined;
      this.reopen();
    }
    const keywords = await this.#keywords;
    return keywords && (await this.#nodes) ? keywords : undefined;
  }

  /** True when `owner`'s heartbeat is current. */
  async #alive(owner: string): Promise<boolean> {
    const nodes = await this.#nodes;
    const entry = await nodes?.get(owner).catch(() => null);
    return entry != null && entry.operation !== "DEL" && entry.operation !== "PURGE";
  }

  /**
   * Claims `key` for this node; `replace` takes it from a live owner too. A live owner that no longer
   * holds the keyword (a device that moved here an instant after leaving it, before its claim was
   * deleted) does not refuse it.
   */
  async claim(key: string, replace: boolean): Promise<ClaimResult> {
    const keywords = await this.#ready();
    if (!keywords) return { kind: "unclaimed" };
    const me = encoder.encode(this.#node);
    // The heartbeat first, so that others see the owner of the claim alive (a restarted server has none).
    if (!(await this.#beat())) throw new Error("Cannot write this node's heartbeat to the claim store");
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        await keywords.create(key, me);
        return { kind: "held" };
      } catch {
        // It exists: whose is it?
      }
      const entry = await keywords.get(key);
      if (!entry || entry.operation === "DEL" || entry.operation === "PURGE") continue; // freed meanwhile
      const owner = decoder.decode(entry.value);
      if (owner === this.#node) return { kind: "held" };
      // A live owner still holding it (`replace` does not ask: it takes the keyword either way).
      const holding = await this.#alive(owner) && (replace || await this.#ownerHolds(owner, key));
      if (holding && !replace) return { kind: "refused", owner };
      try {
        await keywords.update(key, me, entry.revision);
        return holding ? { kind: "replaced", owner } : { kind: "held" };
      } catch {
        // Another node took it first: look again.
      }
    }
    const entry = await keywords.get(key);
    return { kind: "refused", owner: entry ? decoder.decode(entry.value) : "another node" };
  }

  /** Gives up `key` when this node holds it. */
  async release(key: string): Promise<void> {
    const keywords = await this.#keywords;
    if (!keywords) return;
    const entry = await keywords.get(key).catch(() => null);
    if (!entry || entry.operation === "DEL" || decoder.decode(entry.value) !== this.#node) return;
    await keywords.delete(key, { previousSeq: entry.revision }).catch(() => {});
  }

  /** Stops the heartbeat and removes it: this node's claims can be taken over at once. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    const nodes = await this.#nodes;
    await nodes?.delete(this.#node).catch(() => {});
  }
}
