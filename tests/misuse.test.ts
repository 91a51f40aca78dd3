/**
 * Misuse: every public method of `IoCore` called with wrong types, unknown ids, after `close()` and
 * concurrently. Each refusal is a typed error at the call (a rejection for the methods that return
 * a Promise), and nothing was queued or lost: a valid call made next still works.
 *
 * @module
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  AddressInUseError,
  type ClientId,
  CoreClosedError,
  IoCore,
  type IoCoreOptions,
  type IoCoreStats,
  nativeTransport,
  parseCidr,
  parseIp,
  timingSafeEqual,
  UnknownClientError,
} from "../mod.ts";
import { type CoreFixture, iterateUntil, startCore } from "./_core_fixture.ts";
import { Resources, TEST_TIMEOUT } from "./_helpers.ts";
import { text, type WirePeer } from "./_wire_peer.ts";

const TCP: IoCoreOptions = { listeners: [{ transport: "tcp", port: 0 }] };

/** Values that are not messages; each must be refused, and none may go out as bytes. */
const NOT_MESSAGES: ReadonlyArray<[string, unknown]> = [
  ["a number", 12345],
  ["a plain object", { ok: true }],
  ["an ArrayBuffer", new ArrayBuffer(4)],
  ["an array of numbers", [1, 2, 3]],
  ["null", null],
  ["undefined", undefined],
  ["a Uint16Array", new Uint16Array([0x4142])],
  ["a DataView", new DataView(new ArrayBuffer(2))],
];

/** Ids that are not ids: a `TypeError` for the wrong type, a `RangeError` for the wrong number. */
const NOT_IDS: ReadonlyArray<[unknown, ErrorConstructor]> = [
  ["1", TypeError],
  [undefined, TypeError],
  [null, TypeError],
  [{}, TypeError],
  [NaN, RangeError],
  [-1, RangeError],
  [0, RangeError],
  [1.5, RangeError],
];

// Calls with misuse on purpose: the types say what the application would have been told.
// deno-lint-ignore no-explicit-any
type Loose = any;

/** Every method that acts on a client, called with `id` and otherwise valid arguments. */
function actingCalls(core: IoCore): Array<[string, (id: ClientId) => unknown]> {
  return [
    ["sendMessageToClient", (id) => core.sendMessageToClient(id, "x")],
    ["sendMessagesToClient", (id) => core.sendMessagesToClient(id, ["x"])],
    ["switchClientRawConnectionMode", (id) => core.switchClientRawConnectionMode(id, true)],
    ["setInlineProcessorForClient", (id) => core.setInlineProcessorForClient(id, class {} as Loose)],
    ["reconnectClient", (id) => core.reconnectClient(id)],
    ["closeClientConnection", (id) => core.closeClientConnection(id)],
    ["markClientConnectionAsReadyToBeClosed", (id) => core.markClientConnectionAsReadyToBeClosed(id)],
    [
      "markClientConnectionAsShouldBeClosedImmediately",
      (id) => core.markClientConnectionAsShouldBeClosedImmediately(id),
    ],
    ["messages", (id) => core.messages(id)],
  ];
}

/** Every query about a client, called with `id`, and the answer it documents for an unknown id. */
function queries(core: IoCore): Array<[string, (id: ClientId) => unknown, unknown]> {
  return [
    ["getClientInfo", (id) => core.getClientInfo(id), undefined],
    ["getMessageFromClient", (id) => core.getMessageFromClient(id), undefined],
    ["getMessagesFromClient", (id) => core.getMessagesFromClient(id), []],
    ["takeFrames", (id) => core.takeFrames(id), undefined],
  ];
}

function assertFiniteStats(stats: IoCoreStats, label: string): void {
  for (const [name, value] of Object.entries(stats)) {
    if (typeof value === "number") assert.ok(Number.isFinite(value), `${label}: stats().${name} is ${value}`);
  }
}

async function connected(fx: CoreFixture, keyword = "worker"): Promise<{ id: ClientId; peer: WirePeer }> {
  return await fx.connectNamed(keyword);
}

describe("misuse: payloads of the wrong type", () => {
  it(
    "refuses each non-message with a TypeError naming it, sends nothing, and the next message still arrives",
    TEST_TIMEOUT,
    async () => {
      await using fx = await startCore(TCP);
      const core = fx.core;
      const { id, peer } = await connected(fx);
      const before = core.stats();
      for (const [label, bad] of NOT_MESSAGES) {
        assert.throws(
          () => core.sendMessageToClient(id, bad as Loose),
          (err: Error) =>
            err instanceof TypeError && /message must be a Uint8Array or a string/.test(err.message),
          label,
        );
        assert.throws(
          () => core.sendMessagesToClient(id, ["queued first?", bad] as Loose),
          (err: Error) => err instanceof TypeError && /messages\[1\]/.test(err.message),
          `${label} in a list`,
        );
      }
      assert.deepEqual(core.stats(), before, "nothing was counted as output");
      assertFiniteStats(core.stats(), "after the refusals");
      assert.equal(core.getClientInfo(id)?.state, "connected");
      core.sendMessageToClient(id, "after");
      core.sendMessagesToClient(id, new Set(["one", "two"]));
      // Only the valid messages went out: the first of the refused lists did not.
      assert.deepEqual([await peer.next(), await peer.next(), await peer.next()].map(text), [
        "after",
        "one",
        "two",
      ]);
      await iterateUntil(core, () => core.stats().outputBytes === 0);
      assertFiniteStats(core.stats(), "after the valid sends");
    },
  );

  it("refuses a string or bytes where a list of messages is expected", TEST_TIMEOUT, async () => {
    await using fx = await startCore(TCP);
    const core = fx.core;
    const { id, peer } = await connected(fx);
    for (const bad of ["abc", new Uint8Array([1, 2]), 5, null, undefined, { length: 1 }]) {
      assert.throws(() => core.sendMessagesToClient(id, bad as Loose), TypeError, String(bad));
    }
    core.sendMessagesToClient(id, ["ok"]);
    assert.equal(text(await peer.next()), "ok");
    assert.equal(peer.pending, 0);
  });

  it(
    "refuses a wrong raw flag, processor or keyword type, and leaves the client as it was",
    TEST_TIMEOUT,
    async () => {
      await using fx = await startCore(TCP);
      const core = fx.core;
      const { id, peer } = await connected(fx);
      assert.throws(() => core.switchClientRawConnectionMode(id, "yes" as Loose), /raw must be a boolean/);
      assert.equal(core.getClientInfo(id)?.raw, false);
      assert.throws(
        () => core.setInlineProcessorForClient(id, {} as Loose),
        /processorClass must be a function/,
      );
      assert.throws(() => core.getClientIdByKeyword(5 as Loose), /keyword must be a string or a Uint8Array/);
      assert.throws(
        () => core.messages(id, { highWaterMark: 5 } as Loose),
        /did you mean highWaterMarkBytes/,
      );
      assert.throws(() => core.messages(id, { highWaterMarkBytes: -1 }), RangeError);
      core.messages(id, { highWaterMarkBytes: Infinity }); // never pauses: allowed
      core.sendMessageToClient(id, "framed still");
      assert.equal(text(await peer.next()), "framed still");
    },
  );
});

describe("misuse: client ids", () => {
  it("refuses a malformed id in every method, queries included, with a TypeError or RangeError", async () => {
    await using core = new IoCore({ logger: null });
    const all = [
      ...actingCalls(core),
      ...queries(core).map(([n, f]) => [n, f] as const),
      [
        "removeClient",
        (id: ClientId) => core.removeClient(id),
      ] as const,
    ];
    for (const [name, call] of all) {
      for (const [bad, type] of NOT_IDS) {
        assert.throws(() => call(bad as ClientId), type, `${name}(${String(bad)})`);
      }
    }
  });

  it(
    "gives UnknownClientError from every acting method for an unknown id, and the documented answers from queries",
    async () => {
      await using core = new IoCore({ logger: null });
      const known = core.addClient({ keyword: "known" });
      const unknown = known + 100;
      for (const [name, call] of actingCalls(core)) {
        assert.throws(() => call(unknown), UnknownClientError, name);
      }
      for (const [name, call, answer] of queries(core)) assert.deepEqual(call(unknown), answer, name);
      assert.equal(core.getClientIdByKeyword("nobody"), undefined);
      core.removeClient(unknown); // already forgotten: nothing to do
      core.removeClient(known);
      core.removeClient(known);
      assert.throws(() => core.sendMessageToClient(known, "x"), UnknownClientError, "a removed client");
      assert.equal(core.stats().clients, 0);
    },
  );

  it(
    "refuses sendFrames to an unknown id, and the batch can still go where it belongs",
    TEST_TIMEOUT,
    async () => {
      await using fx = await startCore(TCP);
      const core = fx.core;
      const { id, peer } = await connected(fx);
      peer.send("frame");
      await iterateUntil(core, () => core.getClientInfo(id)!.unreadMessages === 1);
      const batch = core.takeFrames(id)!;
      assert.throws(() => core.sendFrames(id + 100, batch), UnknownClientError);
      core.sendFrames(id, batch);
      assert.equal(text(await peer.next()), "frame");
    },
  );
});

describe("misuse: after close()", () => {
  it(
    "acting methods give CoreClosedError, and queries still answer with the messages that arrived before",
    TEST_TIMEOUT,
    async () => {
      await using fx = await startCore(TCP);
      const core = fx.core;
      const { id, peer } = await connected(fx);
      const outgoing = core.addClient({ keyword: "out", connect: { transport: "tcp", port: fx.port() } });
      peer.send("before close");
      await iterateUntil(core, () => core.getClientInfo(id)!.unreadMessages === 1);
      await core.close();
      for (const [name, call] of actingCalls(core).filter(([name]) => name !== "messages")) {
        assert.throws(() => call(id), CoreClosedError, name);
        assert.throws(() => call(outgoing), CoreClosedError, `${name} (outgoing client)`);
      }
      assert.throws(() => core.removeClient(id), CoreClosedError);
      assert.throws(() => core.addClient({ keyword: "late" }), CoreClosedError);
      assert.equal(core.stats().outputBytes, 0, "nothing buffered for the outgoing client");
      assert.equal(core.getClientIdByKeyword("worker"), id);
      assert.equal(core.getClientInfo(id)?.state, "disconnected");
      assert.deepEqual(core.getMessagesFromClient(id).map(text), ["before close"]);
      assert.deepEqual(core.getMessagesFromClient(id), []);
      assertFiniteStats(core.stats(), "after close");
    },
  );

  it("sendFrames with a batch taken before close() gives CoreClosedError", TEST_TIMEOUT, async () => {
    await using fx = await startCore(TCP);
    const core = fx.core;
    const { id, peer } = await connected(fx);
    peer.send("taken");
    await iterateUntil(core, () => core.getClientInfo(id)!.unreadMessages === 1);
    const batch = core.takeFrames(id)!;
    await core.close();
    assert.throws(() => core.sendFrames(id, batch), CoreClosedError);
    assert.equal(core.stats().outputBytes, 0);
  });

  it("stopAccepting resolves after close and when called twice at once", async () => {
    const core = new IoCore({ logger: null, ...TCP });
    await core.listen();
    await Promise.all([core.stopAccepting(), core.stopAccepting()]);
    await core.close();
    await core.stopAccepting();
    assert.equal(core.isClosed, true);
  });

  it("listen, ioIteration and shutdown reject after close, and never throw", async () => {
    const core = new IoCore({ logger: null, ...TCP });
    await core.close();
    const listening = core.listen();
    await assert.rejects(listening, CoreClosedError);
    await assert.rejects(core.ioIteration(10), CoreClosedError);
    await core.shutdown({ timeoutMs: 10 });
  });
});

describe("misuse: Promise-returning methods reject, never throw", () => {
  it("ioIteration refuses a bad timeout or option as a rejection, and waits normally next", async () => {
    await using core = new IoCore({ logger: null });
    const bad: Array<[unknown, ErrorConstructor]> = [
      ["abc", TypeError],
      [null, TypeError],
      [NaN, RangeError],
      [-5, RangeError],
      [2 ** 31, RangeError],
    ];
    for (const [timeoutMs, type] of bad) {
      let pending: Promise<unknown> | undefined;
      assert.doesNotThrow(() => pending = core.ioIteration(timeoutMs as number), String(timeoutMs));
      await assert.rejects(pending!, type, String(timeoutMs));
    }
    await assert.rejects(core.ioIteration(1, { signl: undefined } as Loose), /did you mean signal/);
    await assert.rejects(core.ioIteration(1, null as Loose), TypeError);
    const result = await core.ioIteration(1);
    assert.equal(result.clientsHaveDataToRead.size, 0);
  });

  it("a second concurrent ioIteration rejects, and the first still resolves", async () => {
    await using core = new IoCore({ logger: null });
    const first = core.ioIteration(20);
    let second: Promise<unknown> | undefined;
    assert.doesNotThrow(() => second = core.ioIteration(20));
    await assert.rejects(second!, TypeError);
    assert.equal((await first).newlyConnectedExpectedClients.size, 0);
  });

  it("shutdown refuses a bad timeout or option as a rejection", async () => {
    await using core = new IoCore({ logger: null });
    for (const options of [{ timeoutMs: -1 }, { timeoutMs: NaN }, { timeotMs: 5 }, null]) {
      let pending: Promise<void> | undefined;
      assert.doesNotThrow(() => pending = core.shutdown(options as Loose));
      await assert.rejects(pending!, (err: Error) => err instanceof TypeError || err instanceof RangeError);
    }
    await assert.rejects(core.shutdown({ timeotMs: 5 } as Loose), /did you mean timeoutMs/);
    assert.equal(core.isClosed, false, "a refused shutdown does not start one");
  });
});

describe("misuse: concurrent listen()", () => {
  it("two calls on a fixed port share one outcome, and the core listens", TEST_TIMEOUT, async () => {
    const probe = await startCore(TCP);
    const port = probe.port();
    await probe.close();
    await using res = new Resources();
    const core = new IoCore({ logger: null, listeners: [{ transport: "tcp", hostname: "127.0.0.1", port }] });
    res.add({ close: () => void core.close() });
    const [a, b] = await Promise.allSettled([core.listen(), core.listen()]);
    assert.equal(a.status, "fulfilled", String((a as PromiseRejectedResult).reason));
    assert.equal(b.status, "fulfilled", String((b as PromiseRejectedResult).reason));
    assert.deepEqual(a.value, b.value);
    assert.equal(core.isClosed, false);
    const conn = await nativeTransport().connect({ transport: "tcp", port });
    res.add(conn);
    await assert.rejects(core.listen(), /already listening/, "a call after the first finished");
    await core.close();
  });

  it("listen() after stopAccepting() rejects, and binds nothing that would close what it accepts", async () => {
    const core = new IoCore({ logger: null, ...TCP });
    try {
      await core.listen();
      await core.stopAccepting();
      await assert.rejects(
        core.listen(),
        (err: Error) => err instanceof TypeError && /stopped accepting/.test(err.message),
      );
      assert.equal(core.listeners.length, 1, "only the listener bound first is listed");
    } finally {
      await core.close();
    }
  });

  it("listen() after a failed listen() binds again, and lists only what it bound", TEST_TIMEOUT, async () => {
    await using busy = await startCore(TCP);
    const core = new IoCore({
      logger: null,
      listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }, {
        transport: "tcp",
        hostname: "127.0.0.1",
        port: busy.port(),
      }],
    });
    try {
      await assert.rejects(core.listen(), AddressInUseError);
      assert.equal(core.listeners.length, 0, "the listener bound before the failure is closed and forgotten");
      await busy.close();
      const addrs = await core.listen();
      assert.equal(addrs.length, 2);
      assert.deepEqual(core.listeners.map((l) => l.addr), addrs);
    } finally {
      await core.close();
    }
  });

  it("two calls on port 0 bind one socket", TEST_TIMEOUT, async () => {
    const core = new IoCore({ logger: null, ...TCP });
    try {
      const [a, b] = await Promise.all([core.listen(), core.listen()]);
      assert.deepEqual(a, b);
      assert.equal(core.listeners.length, 1);
    } finally {
      await core.close();
    }
  });
});

describe("misuse: options", () => {
  const create = (options: unknown) => () => new IoCore(options as IoCoreOptions);

  it("refuses unknown IoCore, listener and limit names with the nearest known one", () => {
    assert.throws(
      create({ listeners: { transport: "tcp", port: 0 } }),
      /listeners must be an array, got an object/,
    );
    assert.throws(
      create({ listeners: [{ transport: "tcp", port: 0, tsl: {} }] }),
      (err: Error) =>
        err instanceof TypeError && /unknown listener option tsl/.test(err.message) &&
        /did you mean tls\?/.test(err.message),
    );
    assert.throws(create({ listner: [] }), /unknown IoCore option listner.*did you mean listeners\?/);
    assert.throws(
      create({ limits: { maxMesageBytes: 5 } }),
      /unknown limit maxMesageBytes.*did you mean maxMessageBytes\?/,
    );
    assert.throws(
      create({ listeners: [{ transport: "tcp", port: 0, cert: "x" }] }),
      /it is for tls listeners/,
    );
    assert.throws(create(null), /options must be an object, got null/);
  });

  it("refuses wrong values, naming the option and what it got", () => {
    assert.throws(
      create({ acceptUnexpectedKeywords: "yes" }),
      /acceptUnexpectedKeywords must be one of true, false, "adopt", got "yes"/,
    );
    assert.throws(create({ unknownClients: "alow" }), /did you mean "?allow"?/);
    assert.throws(create({ listeners: [{ transport: "tcp", port: 70000 }] }), RangeError);
    assert.throws(create({ listeners: [{ transport: "tpc", port: 0 }] }), /did you mean tcp\?/);
    assert.throws(create({ listeners: [{ transport: "tls", port: 0 }] }), /cert is required/);
    assert.throws(create({ limits: { inputBytes: -1 } }), RangeError);
    assert.throws(create({ limits: { inputBytes: "1" } }), TypeError);
    assert.throws(create({ noDelay: 1 }), TypeError);
    assert.throws(create({ signal: {} }), /signal must be an AbortSignal/);
  });

  it("addClient checks its options and connect as listen() checks a listener, and registers nothing", async () => {
    await using core = new IoCore({ logger: null });
    const refusals: Array<[unknown, RegExp]> = [
      [undefined, /options must be an object, got undefined/],
      [{ keywrod: "k" }, /did you mean keyword\?/],
      [{}, /keyword is required/],
      [{ keyword: 5 }, /keyword must be a string or a Uint8Array/],
      [
        { keyword: "k", connect: { transport: "tcp", port: 70000 } },
        /port must be an integer from 1 to 65535, got 70000/,
      ],
      [{ keyword: "k", connect: { transport: "tpc", port: 7 } }, /did you mean tcp\?/],
      [{ keyword: "k", connect: { transport: "tcp" } }, /port is required/],
      [{ keyword: "k", connect: { transport: "unix", path: "" } }, /path must be a non-empty string/],
      [
        { keyword: "k", connect: { transport: "tcp", port: 7 }, reconnect: { maxAttempt: 3 } },
        /did you mean maxAttempts\?/,
      ],
      [{ keyword: "k", connect: { transport: "tcp", port: 7 }, reconnect: true }, /reconnect/],
      [{ keyword: "k", raw: "yes" }, /raw must be a boolean/],
    ];
    for (const [options, message] of refusals) {
      assert.throws(() => core.addClient(options as Loose), message, JSON.stringify(options));
    }
    assert.equal(core.stats().clients, 0);
    assert.equal(core.stats().connections, 0);
    const id = core.addClient({ keyword: "k" });
    assert.equal(core.getClientIdByKeyword("k"), id);
  });
});

describe("misuse: exported helpers", () => {
  it("timingSafeEqual refuses strings, which compared equal whenever their lengths matched", () => {
    assert.throws(() => timingSafeEqual("secret-token" as Loose, "guessguessgu" as Loose), TypeError);
    assert.throws(
      () => timingSafeEqual(new Uint8Array(1), [1] as Loose),
      /b must be a Uint8Array, got an Array/,
    );
    assert.equal(timingSafeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 3])), false);
    assert.equal(timingSafeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2])), true);
  });

  it("parseIp and parseCidr refuse a value that is not a string with a TypeError", () => {
    for (const bad of [5, null, undefined, new Uint8Array(4)]) {
      assert.throws(() => parseIp(bad as Loose), /Cannot parse IP address: expected a string/);
      assert.throws(() => parseCidr(bad as Loose), /Cannot parse CIDR range: expected a string/);
    }
    assert.equal(parseIp("not an address"), undefined);
  });
});
