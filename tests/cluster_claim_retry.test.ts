/**
 * `natsCluster`'s retry of unclaimed keywords, without sockets: a fake NATS connection and a fake
 * JetStream KV store that the test opens when it likes (as a fresh server's JetStream becomes
 * ready), with `claimRetryMs` at 5 ms instead of 2 s. A keyword that went unclaimed is claimed once
 * the store opens, no longer once its connection ended, and not taken from a live node holding it.
 * After a reconnect every held keyword is claimed again, and one another node took meanwhile closes.
 * A live node that answers it let a keyword go (its claim's deletion on its way) does not refuse it.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { ClusterBus, ClusterHost } from "../mod.ts";
import { natsCluster, type NatsKvEntryLike, type NatsKvLike } from "../cluster/nats.ts";
import { keywordToken, Op, Reply } from "../cluster/_nats_wire.ts";
import { TEST_TIMEOUT } from "./_helpers.ts";
import { waitFor as waitForIt } from "./_settle.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const RETRY_MS = 5;

/** A KV bucket in memory, with nats.js's semantics for the calls the claims make. */
class FakeKv implements NatsKvLike {
  readonly entries = new Map<string, { value: Uint8Array; revision: number }>();
  /** The keys `create` was called with, in order. */
  readonly creates: string[] = [];
  /** While set, `create` waits for it. */
  gate: Promise<void> | undefined = undefined;
  #revision = 0;
  async create(key: string, data: Uint8Array): Promise<number> {
    this.creates.push(key);
    await this.gate;
    if (this.entries.has(key)) throw new Error("wrong last sequence");
    return this.put(key, data);
  }
  update(key: string, data: Uint8Array, version: number): Promise<number> {
    if (this.entries.get(key)?.revision !== version) return Promise.reject(new Error("wrong last sequence"));
    return this.put(key, data);
  }
  put(key: string, data: Uint8Array): Promise<number> {
    this.entries.set(key, { value: data.slice(), revision: ++this.#revision });
    return Promise.resolve(this.#revision);
  }
  get(key: string): Promise<NatsKvEntryLike | null> {
    const entry = this.entries.get(key);
    return Promise.resolve(entry ? { ...entry, operation: "PUT" } : null);
  }
  delete(key: string, options?: { previousSeq?: number }): Promise<void> {
    const entry = this.entries.get(key);
    if (options?.previousSeq !== undefined && entry?.revision !== options.previousSeq) {
      return Promise.reject(new Error("wrong last sequence"));
    }
    this.entries.delete(key);
    return Promise.resolve();
  }
  /** The node holding `keyword`, or `undefined`. */
  owner(keyword: string): string | undefined {
    const entry = this.entries.get(keywordToken(enc(keyword)));
    return entry && text(entry.value);
  }
}

/**
 * A bus for node `a` over a fake connection, a store that is closed until `store.open = true`
 * (`openAtStart`: open from the start), and a host.
 */
function setup(openAtStart = false) {
  const store = { open: openAtStart, opens: 0, keywords: new FakeKv(), nodes: new FakeKv() };
  /** What another node answers when asked whether it still holds a keyword (none: no answer). */
  const answers = new Map<string, "holds" | "let go">();
  type Callback = (err: Error | null, msg: { data: Uint8Array; respond(data: Uint8Array): boolean }) => void;
  const subscriptions = new Map<string, { closed: boolean; callback?: Callback }>();
  /** Emits a connection event (`"reconnect"`), as nats.js's `status()` does. */
  let emit: (type: string) => void = () => {};
  const nc = {
    async *status() {
      for (;;) yield { type: await new Promise<string>((resolve) => emit = resolve) };
    },
    subscribe(subject: string, options?: { callback?: Callback }) {
      const sub = { closed: false, callback: options?.callback, unsubscribe: () => void (sub.closed = true) };
      subscriptions.set(subject, sub);
      return sub;
    },
    request(subject: string, body: Uint8Array) {
      const answer = body[0] === Op.holds ? answers.get(subject.replace("asockio.t.n.", "")) : undefined;
      if (answer) {
        return Promise.resolve({ data: new Uint8Array([answer === "holds" ? Reply.ok : Reply.offline]) });
      }
      return Promise.reject(Object.assign(new Error("503"), { code: "503" }));
    },
    flush: () => Promise.resolve(),
  };
  const bus: ClusterBus = natsCluster(nc, {
    name: "t",
    node: "a",
    claimRetryMs: RETRY_MS,
    kv: (bucket) => {
      store.opens++;
      if (!store.open) return Promise.reject(new Error("JetStream not ready"));
      return Promise.resolve(bucket.endsWith("_keywords") ? store.keywords : store.nodes);
    },
  });
  const drops: string[] = [];
  const host: ClusterHost = {
    deliver() {},
    maxMessageBytes: 1024,
    replaceDuplicates: false,
    drop: (keyword, reason) => void drops.push(`${text(keyword)}: ${reason}`),
    warn() {},
  };
  bus.attach(host);
  /** The subscription of `keyword`'s subject. */
  const subscription = (keyword: string) => subscriptions.get(`asockio.t.${keywordToken(enc(keyword))}`);
  /** Resolves once the store was opened `rounds` more times: as many retries have run. */
  const retried = (rounds: number) => {
    const until = store.opens + 2 * rounds; // each retry opens both buckets again
    return waitForIt(() => store.opens >= until, 5000, `${rounds} claim retries`);
  };
  /** What this node answers another that asks whether it holds `keyword`. */
  const asked = (keyword: string) => {
    let reply: Uint8Array | undefined;
    const data = new Uint8Array([Op.holds, ...enc(keywordToken(enc(keyword)))]);
    subscriptions.get("asockio.t.n.a")!.callback!(null, { data, respond: (r) => Boolean(reply = r) });
    return reply?.[0] === Reply.ok ? "holds" : reply?.[0] === Reply.offline ? "let go" : "no answer";
  };
  return { bus, store, drops, answers, subscription, retried, asked, emit: (type: string) => emit(type) };
}

describe(
  "natsCluster claims without sockets: the retry of unclaimed keywords, and reconnects",
  TEST_TIMEOUT,
  () => {
    it("claims a keyword once the store opens, after retrying while it was closed", async () => {
      const { bus, store, retried } = setup();
      bus.claim(enc("dev"));
      await retried(2);
      assert.equal(store.keywords.owner("dev"), undefined, "nothing claimed while the store is closed");
      store.open = true;
      await waitForIt(() => store.keywords.owner("dev") === "a", 5000, "the claim in the store");
      assert.equal(bus.stats().keywordsHeld, 1);
      await bus.detach();
    });

    it("stops retrying a keyword once its connection ended", async () => {
      const { bus, store, subscription, retried } = setup();
      bus.claim(enc("dev"));
      bus.claim(enc("marker")); // still held: its retries go on, and show that dev's do not
      await retried(1);
      bus.release(enc("dev"));
      assert.equal(subscription("dev")?.closed, true);
      await retried(2);
      store.open = true;
      await waitForIt(() => store.keywords.owner("marker") === "a", 5000, "the marker's claim");
      await bus.detach(); // every claim and release has run
      assert.equal(store.keywords.owner("dev"), undefined, "the ended connection's keyword is not claimed");
      assert.ok(!store.keywords.creates.includes(keywordToken(enc("dev"))), "nor tried");
    });

    it("does not take a keyword that a live node holds: the connection here closes", async () => {
      const { bus, store, drops, subscription, retried } = setup();
      await store.keywords.put(keywordToken(enc("dev")), enc("b"));
      await store.nodes.put("b", enc(String(Date.now()))); // b's heartbeat: b is alive
      bus.claim(enc("dev"));
      await retried(1);
      store.open = true;
      await waitForIt(() => drops.length > 0, 5000, "the duplicate dropped");
      assert.deepEqual(drops, ["dev: duplicate keyword: node b holds it"]);
      assert.equal(subscription("dev")?.closed, true, "no longer subscribed");
      assert.equal(bus.stats().keywordsHeld, 0);
      const tries = store.keywords.creates.length;
      // Nothing can signal that a retry did not happen: give it 20 retry periods.
      await new Promise((resolve) => setTimeout(resolve, 20 * RETRY_MS));
      assert.equal(store.keywords.creates.length, tries, "not tried again");
      assert.equal(store.keywords.owner("dev"), "b", "b still holds it");
      await bus.detach();
    });

    it("takes a keyword from a live node that answers it let it go, before its claim was deleted", async () => {
      const { bus, store, drops, answers } = setup();
      store.open = true;
      await store.keywords.put(keywordToken(enc("dev")), enc("b")); // b's claim, its deletion on its way
      await store.nodes.put("b", enc(String(Date.now())));
      answers.set("b", "let go");
      bus.claim(enc("dev"));
      await waitForIt(() => store.keywords.owner("dev") === "a", 5000, "a's claim");
      assert.deepEqual(drops, []);
      assert.equal(bus.stats().keywordsHeld, 1);
      await bus.detach();
    });

    it("refuses a keyword of a live node that answers it holds it, or does not answer", async () => {
      for (const answer of ["holds", undefined] as const) {
        const { bus, store, drops, answers } = setup();
        store.open = true;
        await store.keywords.put(keywordToken(enc("dev")), enc("b"));
        await store.nodes.put("b", enc(String(Date.now())));
        if (answer) answers.set("b", answer);
        bus.claim(enc("dev"));
        await waitForIt(() => drops.length > 0, 5000, "the duplicate dropped");
        assert.deepEqual(drops, ["dev: duplicate keyword: node b holds it"], `b's answer: ${answer}`);
        assert.equal(store.keywords.owner("dev"), "b");
        await bus.detach();
      }
    });

    it("answers another node: holds a keyword while claiming and subscribed, lets it go on release", async () => {
      const { bus, store, asked } = setup(true);
      assert.equal(asked("dev"), "let go");
      let open = () => {};
      store.keywords.gate = new Promise((resolve) => open = resolve);
      const admitted = bus.admit!(enc("dev")); // the claim before a handshake's OK
      await waitForIt(() => store.keywords.creates.length === 1, 5000, "the claim's create");
      assert.equal(asked("dev"), "holds", "while its claim is made");
      open();
      assert.equal(await admitted, undefined);
      assert.equal(asked("dev"), "holds", "claimed, before OK");
      bus.claim(enc("dev"));
      assert.equal(asked("dev"), "holds", "subscribed");
      bus.release(enc("dev"));
      assert.equal(asked("dev"), "let go", "released, its claim's deletion on its way");
      await bus.detach();
    });

    it("claims again after NATS comes back: a keyword another node took meanwhile closes here", async () => {
      const { bus, store, drops, subscription, emit } = setup();
      store.open = true;
      bus.claim(enc("dev"));
      bus.claim(enc("kept"));
      await waitForIt(() => store.keywords.owner("dev") === "a", 5000, "a's claim");
      // While a was cut off, its heartbeat expired and node b took dev over.
      await store.keywords.put(keywordToken(enc("dev")), enc("b"));
      await store.nodes.put("b", enc(String(Date.now())));
      emit("reconnect");
      await waitForIt(() => drops.length > 0, 5000, "the duplicate dropped");
      assert.deepEqual(drops, ["dev: duplicate keyword: node b holds it"]);
      assert.equal(subscription("dev")?.closed, true);
      assert.equal(store.keywords.owner("kept"), "a", "a keyword nobody took stays claimed");
      assert.equal(bus.stats().keywordsHeld, 1);
      await bus.detach();
    });
  },
);
