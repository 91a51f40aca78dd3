/**
 * Robustness: a bounded fuzz run, fault injection (a peer killed mid-message, a half-closing peer, a
 * reset during a large write), churn, flood and soak. The full-size runs are `scripts/fuzz.ts`,
 * `scripts/churn.ts`, `scripts/flood.ts` and `scripts/soak.ts`, over the same workloads.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { AsockioError, ConnectionClosedError, encodeFrame, encodeFrames, type IoCore } from "../mod.ts";
import { iterateUntil, startCore } from "./_core_fixture.ts";
import { delay, MiB, TEST_TIMEOUT } from "./_helpers.ts";
import { text, type WirePeer } from "./_wire_peer.ts";
import { fnv, FNV_OFFSET, messageHash, RefDecoder, Rng } from "./_stream_check.ts";
import { CrashMonitor } from "./_monitors.ts";
import { echo } from "./_app_loop.ts";
import { type ChildPeer, HALF_FRAME_PEER, spawnChildPeer } from "./_child_peers.ts";
import { DEFAULT_FUZZ_LIMITS, fuzzPlan, PROXY_PLAN_SHARE } from "./_fuzz_plan.ts";
import { formatIpv6, judgeProxyHeader, V2_SIGNATURE, validProxyHeader } from "./_fuzz_proxy.ts";
import { runFuzz } from "./_fuzz.ts";
import { runChurn } from "./_churn.ts";
import { runFlood } from "./_flood.ts";
import { runSoak } from "./_soak.ts";

/** A round trip of the control client through the application loop (which echoes it). */
async function controlRoundTrip(
  core: IoCore,
  controlId: number,
  control: WirePeer,
  message: string,
): Promise<void> {
  control.send(message);
  await iterateUntil(core, () => (core.getClientInfo(controlId)?.unreadMessages ?? 0) > 0, 10_000);
  echo(core, controlId);
  assert.equal(text(await control.next(10_000)), message);
}

/** The core holds nothing any more: no bytes, no connections, only the registered clients. */
function assertQuiet(core: IoCore, clients: number): void {
  assert.deepEqual(
    { ...core.stats(), readingPaused: false },
    {
      inputBytes: 0,
      outputBytes: 0,
      connections: 0,
      clients,
      heldConnections: 0,
      readingPaused: false,
      udpClients: 0,
      droppedUdpDatagrams: 0,
      parkedConnections: 0,
      droppedConnections: 0,
    },
  );
}

describe("fuzzer building blocks", () => {
  it("gives the same plan for the same seed and index, and another for another seed", () => {
    const a = fuzzPlan(7, 123);
    const b = fuzzPlan(7, 123);
    assert.equal(a.label, b.label);
    assert.deepEqual(a.steps, b.steps);
    const rng = new Rng(7, 1);
    const other = new Rng(8, 1);
    const seq = Array.from({ length: 8 }, () => rng.u32());
    assert.notDeepEqual(seq, Array.from({ length: 8 }, () => other.u32()));
    assert.ok(seq.every((v) => Number.isInteger(v) && v >= 0 && v < 2 ** 32));
  });

  it("has an oracle that decodes split, empty and fatal frames on its own", () => {
    const ref = new RefDecoder(16, true);
    const stream = encodeFrames([new Uint8Array([1, 2, 3]), new Uint8Array(0), new Uint8Array(16).fill(9)]);
    for (let i = 0; i < stream.length; i++) ref.push(stream.subarray(i, i + 1));
    assert.equal(ref.messages, 3);
    assert.ok(ref.inSync);
    assert.deepEqual([...ref.first!], [1, 2, 3]);
    assert.equal(ref.firstEnd, 11);
    let h = FNV_OFFSET;
    for (const m of [new Uint8Array([1, 2, 3]), new Uint8Array(0), new Uint8Array(16).fill(9)]) {
      h = messageHash(h, m);
    }
    assert.equal(ref.hash, h);
    ref.push(encodeFrame(new Uint8Array(5)).subarray(0, 9));
    assert.equal(ref.inSync, false);
    const fatal = new RefDecoder(16);
    fatal.push(encodeFrame(new Uint8Array(17)));
    assert.equal(fatal.fatal, true);
    assert.equal(fatal.messages, 0);
    assert.equal(
      fnv(fnv(FNV_OFFSET, new Uint8Array([1])), new Uint8Array([2])),
      fnv(FNV_OFFSET, new Uint8Array([1, 2])),
    );
  });

  it("plans every mutation family over a few thousand connections", () => {
    const kinds = new Set<string>();
    let cases = 0;
    let rawSwitches = 0;
    for (let i = 0; i < 3000; i++) {
      const plan = fuzzPlan(1, i);
      kinds.add(`${plan.kind}/${plan.ending}`);
      cases += plan.frameCases + plan.rawCases + plan.handshakeCases;
      rawSwitches += plan.steps.filter((s) => s.op === "expect" && s.answers.includes("RAW-ACK")).length;
    }
    for (
      const kind of ["framed/fatal", "framed/half-close", "framed/close", "raw/half-close", "unknown/close"]
    ) {
      assert.ok(kinds.has(kind), `no ${kind} plan in ${[...kinds]}`);
    }
    for (const kind of ["handshake/fatal", "handshake/half-close", "handshake/close", "handshake/stall"]) {
      assert.ok(kinds.has(kind), `no ${kind} plan in ${[...kinds]}`);
    }
    for (const kind of ["proxy/half-close", "proxy/close", "proxy/stall"]) {
      assert.ok(kinds.has(kind), `no ${kind} plan in ${[...kinds]}`);
    }
    assert.ok(rawSwitches > 50, `only ${rawSwitches} raw-mode switches`);
    assert.ok(cases > 3000 * 10, `only ${cases} cases`);
  });
});

describe("the PROXY header oracle", () => {
  const bytes = (s: string) => new Uint8Array([...s].map((c) => c.charCodeAt(0)));
  const v2 = (command: number, family: number, body: number[]) =>
    new Uint8Array([...V2_SIGNATURE, command, family, body.length >> 8, body.length & 0xff, ...body]);
  const v4Body = [192, 0, 2, 1, 198, 51, 100, 7, 0xdc, 0x04, 0x01, 0xbb];

  it("judges the headers it builds valid, with the source they were built from", () => {
    for (let i = 0; i < 5000; i++) {
      const h = validProxyHeader(new Rng(3, i));
      assert.deepEqual(judgeProxyHeader(h.bytes), { kind: "ok", source: h.source }, h.label);
    }
  });

  it("decides hand-written headers from the spec, and leaves the doubtful ones undecided", () => {
    const cases: [Uint8Array, string, { hostname: string; port: number }?][] = [
      [bytes("PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n"), "ok", {
        hostname: "192.0.2.1",
        port: 56324,
      }],
      [bytes("PROXY TCP6 2001:DB8:0:0:0:0:0:1 ::1 1 2\r\n"), "ok", { hostname: "2001:db8::1", port: 1 }],
      [bytes("PROXY UNKNOWN anything at all\r\n"), "ok"],
      [v2(0x21, 0x11, v4Body), "ok", { hostname: "192.0.2.1", port: 56324 }],
      [v2(0x20, 0x00, []), "ok"],
      [v2(0x20, 0x31, [1, 2, 3]), "ok"],
      [bytes("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"), "refused"],
      [bytes("PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n"), "refused"],
      [bytes("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"), "refused"],
      [bytes("PROXY TCP4 ::1 5.6.7.8 1 2\r\n"), "refused"],
      [bytes("PROXY TCP6 1.2.3.4 ::1 1 2\r\n"), "refused"],
      [bytes("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), "refused"],
      [bytes("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"), "refused"],
      [bytes(`PROXY UNKNOWN ${"x".repeat(100)}\r\n`), "refused"],
      [bytes("GET / HTTP/1.1\r\n"), "refused"],
      [v2(0x11, 0x11, v4Body), "refused"],
      [v2(0x22, 0x11, v4Body), "refused"],
      [v2(0x21, 0x12, v4Body), "refused"],
      [v2(0x21, 0x11, v4Body.slice(0, 11)), "refused"],
      [v2(0x21, 0x11, new Array(217).fill(0)), "refused"],
      [bytes("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n"), "unsure"],
      [bytes("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"), "unsure"],
      [bytes("PROXY TCP6 ::ffff:1.2.3.4 ::1 1 2\r\n"), "unsure"],
      [bytes("PROXY TCP6 ::ffff:102:304 ::1 1 2\r\n"), "unsure"],
      [bytes("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nmore"), "unsure"],
      [bytes("PROXY TCP4 1.2."), "unsure"],
    ];
    for (const [header, kind, source] of cases) {
      const verdict = judgeProxyHeader(header);
      const label = JSON.stringify(String.fromCharCode(...header));
      assert.equal(verdict.kind, kind, label);
      if (source) assert.deepEqual(verdict.kind === "ok" && verdict.source, source, label);
    }
    assert.equal(formatIpv6([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]), "2001:db8:0:1::1");
    assert.equal(
      formatIpv6([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]),
      "2001:db8::1:0:0:1",
    );
  });

  it("sends about the planned share of connections through the PROXY listener", () => {
    let proxy = 0;
    const outcomes = new Set<string>();
    for (let i = 0; i < 4000; i++) {
      const plan = fuzzPlan(2, i);
      if (plan.kind !== "proxy") continue;
      proxy++;
      outcomes.add(plan.finalAnswers.join(" or "));
    }
    assert.ok(Math.abs(proxy / 4000 - PROXY_PLAN_SHARE) < 0.02, `${proxy} PROXY plans in 4000`);
    assert.deepEqual([...outcomes].sort(), ["<none>", "OK", "OK or <none>"]);
  });
});

describe("fuzzing a live core", () => {
  it(
    "survives 30k seeded fuzz cases through real sockets: no crash, hang, mismatch or leak",
    TEST_TIMEOUT,
    async () => {
      const report = await runFuzz({ cases: 30_000, seed: 20_261_125, connectionTimeoutMs: 15_000 });
      assert.deepEqual(report.failures, []);
      assert.ok(report.cases >= 30_000, `${report.cases} cases`);
      assert.equal(report.crashes, 0);
      assert.equal(report.hangs, 0);
      assert.equal(report.mismatches, 0);
      assert.ok(report.handshakeCases > 50 && report.rawCases > 1000, JSON.stringify(report));
      assert.ok(report.proxyCases > 20 && report.proxyRefusedCases > 5, JSON.stringify(report));
      assert.ok(report.controlRoundTrips > 0, "the control client kept its round trips");
      assert.equal(report.finalStats?.connections, 0);
      assert.equal(report.finalStats?.inputBytes, 0);
      assert.equal(report.finalStats?.outputBytes, 0);
      assert.ok(DEFAULT_FUZZ_LIMITS.maxMessageBytes < 64 * 1024, "the caps are small enough to reach");
    },
  );
});

describe("faults", () => {
  it(
    "reports a peer killed with SIGKILL mid-message as disconnected and keeps serving the others",
    TEST_TIMEOUT,
    async () => {
      const crashes = CrashMonitor.install();
      let child: ChildPeer | undefined;
      try {
        await using fx = await startCore({
          listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }],
        });
        const core = fx.core;
        const victim = core.addClient({ keyword: "victim" });
        const controlId = core.addClient({ keyword: "control" });
        const control = await fx.handshake("control");
        child = await spawnChildPeer(fx.dir.path, "half_frame", HALF_FRAME_PEER, [
          "127.0.0.1",
          String(fx.port()),
          "victim",
          "100000",
          "40000",
        ]);
        await child.waitForLine((line) => line === "ready", 30_000);
        // The child's keyword is admitted and half of its frame is buffered in the core.
        await iterateUntil(core, (e) => e.expected.has(victim) && core.stats().inputBytes >= 40_000, 10_000);
        assert.equal(core.getClientInfo(victim)?.state, "connected");
        child.kill("SIGKILL");
        assert.equal(await child.exited, "SIGKILL");
        await iterateUntil(core, (e) => e.disconnected.has(victim), 10_000);
        const info = core.getClientInfo(victim)!;
        assert.equal(info.state, "disconnected");
        assert.equal(info.unreadMessages, 0, "the half frame is not delivered");
        assert.ok(
          info.lastError === undefined || info.lastError instanceof AsockioError,
          String(info.lastError),
        );
        assert.equal(core.stats().inputBytes, 0, "the half frame's bytes are released");
        assert.equal(core.stats().connections, 1);
        await controlRoundTrip(core, controlId, control, "still served");
        control.close();
        await iterateUntil(core, (e) => e.disconnected.has(controlId), 10_000);
        assertQuiet(core, 2);
      } finally {
        child?.kill("SIGKILL");
        crashes.dispose();
      }
      assert.deepEqual(crashes.samples, []);
    },
  );

  it(
    "delivers everything queued to a peer that half-closes, then closes the connection",
    TEST_TIMEOUT,
    async () => {
      const crashes = CrashMonitor.install();
      try {
        await using fx = await startCore({
          listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }],
          limits: { halfOpenTimeoutMs: 100 },
        });
        const core = fx.core;
        const { id, peer } = await fx.connectNamed("half");
        // The peer stops reading, so most of what is queued stays in flight in the core.
        peer.conn.pauseReading();
        const count = 512;
        const messages: Uint8Array[] = [];
        for (let i = 0; i < count; i++) {
          const m = new Uint8Array(32 * 1024).fill(i & 0xff);
          new DataView(m.buffer).setUint32(0, i, true);
          messages.push(m);
        }
        core.sendMessagesToClient(id, messages);
        peer.send("last request");
        peer.closeWrite();
        await iterateUntil(core, (e) => e.data.has(id), 10_000);
        assert.deepEqual(core.getMessagesFromClient(id).map(text), ["last request"]);
        await delay(100); // A sleep: it shows that the connection stays open while output is queued.
        assert.equal(core.getClientInfo(id)?.state, "connected", "still writing what is queued");
        assert.equal(core.getClientInfo(id)?.peerEnded, true);
        assert.ok(core.stats().outputBytes > 0);
        peer.conn.resumeReading();
        await peer.waitClosed(30_000);
        assert.equal(peer.pending, count);
        for (let i = 0; i < count; i++) {
          const m = peer.take()!;
          assert.equal(m.length, 32 * 1024);
          assert.equal(new DataView(m.buffer, m.byteOffset).getUint32(0, true), i);
          assert.equal(m[m.length - 1], i & 0xff);
        }
        await iterateUntil(core, (e) => e.disconnected.has(id), 10_000);
        assert.equal(core.getClientInfo(id)?.lastError, undefined);
        assertQuiet(core, 1);
      } finally {
        crashes.dispose();
      }
      assert.deepEqual(crashes.samples, []);
    },
  );

  for (const kind of ["tcp", "unix"] as const) {
    it(
      `ends a ${kind} connection reset during a 32 MiB write with a typed error or a clean disconnect`,
      TEST_TIMEOUT,
      async () => {
        const crashes = CrashMonitor.install();
        try {
          await using fx = await startCore({
            listeners: [
              kind === "tcp"
                ? { transport: "tcp", hostname: "127.0.0.1", port: 0 }
                : { transport: "unix", path: "reset.sock" },
            ],
          });
          const core = fx.core;
          const id = core.addClient({ keyword: "big" });
          const controlId = core.addClient({ keyword: "control" });
          const control = await fx.handshake("control");
          const peer = await fx.handshake("big");
          await iterateUntil(core, (e) => e.expected.has(id) && e.expected.has(controlId), 10_000);
          core.sendMessageToClient(id, new Uint8Array(32 * MiB).fill(7));
          assert.ok(core.stats().outputBytes >= 32 * MiB);
          await peer.until(() => peer.receivedBytes > MiB, 10_000, "the first megabyte");
          // Unread bytes left in the receive buffer make the close a reset (RST).
          peer.conn.pauseReading();
          await delay(50); // A sleep: no event tells when the kernel holds unread bytes.
          peer.close();
          await iterateUntil(core, (e) => e.disconnected.has(id), 20_000);
          const err = core.getClientInfo(id)?.lastError;
          assert.ok(err === undefined || err instanceof AsockioError, `untyped error: ${err}`);
          assert.throws(() => core.sendMessageToClient(id, "too late"), ConnectionClosedError);
          await controlRoundTrip(core, controlId, control, "after the reset");
          control.close();
          await iterateUntil(core, (e) => e.disconnected.has(controlId), 10_000);
          assertQuiet(core, 2);
        } finally {
          crashes.dispose();
        }
        assert.deepEqual(crashes.samples, []);
      },
    );
  }

  it(
    "completes frames that are half received when the input cap is reached (no deadlock on partial frames)",
    TEST_TIMEOUT,
    async () => {
      await using fx = await startCore({
        listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }],
        limits: { inputBytes: MiB, maxMessageBytes: MiB },
      });
      const core = fx.core;
      const ids = [0, 1, 2].map((i) => core.addClient({ keyword: `big-${i}` }));
      const controlId = core.addClient({ keyword: "control" });
      const control = await fx.handshake("control");
      const peers = await Promise.all([0, 1, 2].map((i) => fx.handshake(`big-${i}`)));
      const frames = peers.map((_, i) => encodeFrame(new Uint8Array(900 * 1024).fill(i + 1)));
      // 3 x 700 KiB of partial frames: together over the 1 MiB cap, none of them complete. Past the cap,
      // the connections assembling them pause but one (which finishes its frame once the rest arrives).
      peers.forEach((peer, i) => peer.write(frames[i].subarray(0, 700 * 1024)));
      await iterateUntil(core, () => core.stats().inputBytes > MiB && core.stats().readingPaused, 10_000);
      await controlRoundTrip(core, controlId, control, "while over the cap");
      peers.forEach((peer, i) => peer.write(frames[i].subarray(700 * 1024)));
      const got = new Map<number, Uint8Array[]>();
      await iterateUntil(core, () => got.size === 3, 10_000, (r) => {
        for (const id of r.clientsHaveDataToRead) {
          if (ids.includes(id)) got.set(id, core.getMessagesFromClient(id));
        }
      });
      ids.forEach((id, i) => {
        const [m] = got.get(id)!;
        assert.equal(m.length, 900 * 1024);
        assert.equal(m[0], i + 1);
        assert.equal(m[m.length - 1], i + 1);
      });
      await controlRoundTrip(core, controlId, control, "after the cap");
      for (const peer of [...peers, control]) peer.close();
    },
  );
});

describe("churn, flood and soak (bounded)", () => {
  it(
    "opens and closes 2000 connections of every kind with descriptors and counters back to baseline",
    TEST_TIMEOUT,
    async () => {
      const report = await runChurn({ connections: 2000, concurrency: 32 });
      assert.deepEqual(report.failures, []);
      assert.equal(report.connections, 2000);
      assert.equal(Object.keys(report.variants).length, 10, JSON.stringify(report.variants));
      if (report.fdBaseline >= 0) assert.ok(report.fdAfter <= report.fdBaseline + 4, JSON.stringify(report));
      assert.ok(report.fdPeak > report.fdBaseline, "the churn really held descriptors open");
      assert.equal(report.finalStats?.connections, 0);
      assert.equal(report.finalStats?.heldConnections, 0);
      assert.equal(report.finalStats?.clients, report.registeredClients);
      assert.equal(report.finalStats?.inputBytes, 0);
      assert.equal(report.finalStats?.outputBytes, 0);
      assert.equal(report.crashes, 0);
    },
  );

  it(
    "holds a flooding client at the input cap with RSS under inputBytes + 64 MiB while the control client is served",
    TEST_TIMEOUT,
    async () => {
      const inputBytes = 16 * MiB;
      const report = await runFlood({ bytes: 96 * MiB, inputBytes, holdMs: 200, timeoutMs: 45_000 });
      assert.deepEqual(report.failures, []);
      assert.equal(report.bytesReceived, 96 * MiB);
      assert.ok(report.pausedPhases >= 1, "the core paused the flooder");
      assert.ok(report.peakInputBytes <= inputBytes + MiB, `unread input ${report.peakInputBytes}`);
      assert.ok(report.rssNoReadPeak - report.rssBaseline < inputBytes + 64 * MiB);
      assert.ok(report.controlWhilePaused > 0, "control round trips went on while the flooder was paused");
      assert.equal(report.crashes, 0);
    },
  );

  it(
    "soaks 200k checksummed messages core to core with nothing lost, duplicated or reordered, and graceful closes deliver their tails",
    TEST_TIMEOUT,
    async () => {
      const report = await runSoak({ messages: 200_000, tail: 20_000, timeoutMs: 45_000 });
      assert.deepEqual(report.failures, []);
      assert.equal(report.messages, 200_000);
      for (const d of [report.toServer, report.echoes]) {
        assert.deepEqual(d, { received: 200_000, lost: 0, duplicatedOrLate: 0, corrupt: 0 });
      }
      assert.equal(report.serverTail.received, 20_000);
      assert.equal(report.clientTail.received, 20_000);
      assert.ok(report.serverTail.cleanClose && report.clientTail.cleanClose);
      assert.equal(report.crashes, 0);
    },
  );
});

// Each of these failed before the fix it names; they guard against the bug coming back.
describe("core fixes found by the robustness suite", () => {
  it(
    "releases a held connection that filled the input cap once its peer leaves, and admits new clients again",
    {
      timeout: 30_000,
    },
    async () => {
      await using fx = await startCore({
        listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }],
        limits: { inputBytes: MiB },
      });
      const core = fx.core;
      core.addClient({ keyword: "legit" });
      const stranger = await fx.handshake("nobody registered me");
      for (let i = 0; i < 40; i++) stranger.send(new Uint8Array(64 * 1024));
      // Over the cap (or closed by the core for it), then the stranger leaves.
      await iterateUntil(core, () => core.stats().inputBytes > MiB || stranger.closed, 10_000);
      stranger.close();
      await iterateUntil(core, () => core.stats().heldConnections === 0, 3000);
      assert.equal(core.stats().inputBytes, 0);
      const legit = await fx.connect("legit");
      assert.equal(text(await legit.next(3000)), "OK");
      legit.close();
    },
  );

  it(
    "does not close as idle a client that keeps sending while the core has paused reading it",
    {
      timeout: 30_000,
    },
    async () => {
      await using fx = await startCore({
        listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }],
        limits: { inputBytes: 256 * 1024, idleTimeoutMs: 300 },
      });
      const core = fx.core;
      let sending = true;
      try {
        const id = core.addClient({ keyword: "busy" });
        const peer = await fx.handshake("busy");
        const sender = (async () => {
          for (let i = 0; sending && i < 500 && !peer.closed; i++) {
            peer.send(new Uint8Array(16 * 1024));
            await delay(10); // Not a wait: the sender's pace.
          }
        })();
        await iterateUntil(core, () => core.stats().readingPaused, 10_000);
        const end = Date.now() + 1000;
        while (Date.now() < end) await core.ioIteration(50); // the application reads nothing for 1 s
        assert.equal(core.getClientInfo(id)?.state, "connected", String(core.getClientInfo(id)?.lastError));
        sending = false;
        await sender;
        peer.close();
      } finally {
        sending = false;
      }
    },
  );

  it(
    "keeps the round trips of a client with nothing queued while a slow reader holds the output cap",
    {
      timeout: 30_000,
    },
    async () => {
      await using fx = await startCore({
        listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }],
        limits: { outputBytes: MiB },
      });
      const core = fx.core;
      const slowId = core.addClient({ keyword: "slow" });
      const controlId = core.addClient({ keyword: "control" });
      const slow = await fx.handshake("slow");
      slow.conn.pauseReading();
      const control = await fx.handshake("control");
      await iterateUntil(core, (e) => e.expected.has(slowId) && e.expected.has(controlId), 10_000);
      core.sendMessageToClient(slowId, new Uint8Array(32 * MiB));
      await delay(100); // A sleep: the slow client's writes stall first; no event tells when.
      for (let round = 0; round < 3; round++) {
        control.send(`ping ${round}`);
        await iterateUntil(core, () => (core.getClientInfo(controlId)?.unreadMessages ?? 0) > 0, 2000);
        echo(core, controlId);
        assert.equal(text(await control.next(2000)), `ping ${round}`);
      }
      slow.close();
      control.close();
    },
  );
});
