/**
 * The churn workload: connections of varied kinds opened and closed while a control client does round
 * trips; descriptors and the core's counters must be back to the baseline afterwards.
 *
 * @module
 */
import { join } from "node:path";
import { type ClientId, ConnectionClosedError, IoCore, type IoCoreStats } from "../mod.ts";
import { delay, HangError, tempDir, withTimeout } from "./_helpers.ts";
import { frameHeader, targetOf, text, WirePeer } from "./_wire_peer.ts";
import { Rng } from "./_stream_check.ts";
import { failureList, settledStats, waitFor, wakeOrTimeout } from "./_settle.ts";
import { CrashMonitor, openFdCount, RssSampler } from "./_monitors.ts";
import { AppLoop, ControlPinger, echo, reportCrashes, stopWorkload } from "./_app_loop.ts";
import { runtimeLabel } from "./_script_args.ts";

/** Waits for the application loop to see clients disconnect. */
class DisconnectBoard {
  readonly #done = new Set<ClientId>();
  readonly #waiters = new Map<ClientId, () => void>();

  mark(id: ClientId): void {
    this.#done.add(id);
    const wake = this.#waiters.get(id);
    this.#waiters.delete(id);
    wake?.();
  }

  reset(id: ClientId): void {
    this.#done.delete(id);
  }

  async wait(id: ClientId, timeoutMs: number, label: string): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!this.#done.has(id)) {
      const left = end - Date.now();
      if (left <= 0) {
        throw new HangError(`Timed out after ${timeoutMs} ms waiting for the core to report ${label}`);
      }
      await wakeOrTimeout(Math.min(left, 100), (wake) => this.#waiters.set(id, wake));
    }
    this.#done.delete(id);
  }
}

/** Options for {@linkcode runChurn}. */
export interface ChurnOptions {
  /** Connections to open and close. */
  connections: number;
  /**
   * Connections in flight at once.
   * @default {32}
   */
  concurrency?: number;
  /**
   * Picks each connection's variant.
   * @default {1}
   */
  seed?: number;
  /**
   * Bound on each connection's life.
   * @default {15000}
   */
  timeoutMs?: number;
  /**
   * Descriptors allowed above the baseline at the end.
   * @default {4}
   */
  fdSlack?: number;
  /** Called about once a second with the report so far. */
  progress?: (report: ChurnReport) => void;
}

/** What a churn run did. */
export interface ChurnReport {
  /** Runtime and version. */
  runtime: string;
  /** Connections opened and closed. */
  connections: number;
  /** How many connections of each variant. */
  variants: Record<string, number>;
  /** Wall time. */
  durationMs: number;
  /** Connections per second. */
  perSecond: number;
  /** Open descriptors after the warm-up, before the churn. */
  fdBaseline: number;
  /** The most descriptors sampled during the churn. */
  fdPeak: number;
  /** Open descriptors once everything closed. */
  fdAfter: number;
  /** RSS before and at peak. */
  rssBaseline: number;
  /** Peak RSS. */
  rssPeak: number;
  /** Control round trips completed meanwhile. */
  controlRoundTrips: number;
  /** The core's counters at the end (control closed too). */
  finalStats: IoCoreStats | undefined;
  /** Clients registered with addClient (what `finalStats.clients` must be). */
  registeredClients: number;
  /** Uncaught exceptions, unhandled rejections and errors out of ioIteration. */
  crashes: number;
  /** Connections whose expected outcome did not come in time. */
  hangs: number;
  /** Everything that went wrong (capped). */
  failures: string[];
}

const CHURN_VARIANTS = [
  "client closes",
  "core closes",
  "graceful close",
  "client half-closes",
  "held keyword",
  "duplicate keyword",
  "partial handshake",
  "connect and close",
  "unknown client",
  "oversized keyword",
] as const;

/**
 * Opens and closes `connections` connections of varied kinds (named clients closed by either side,
 * half-closes, held and refused keywords, abandoned handshakes, unknown raw clients) while a control
 * client keeps doing round trips; then checks that descriptors are back to the baseline and that the
 * core's counters are back to zero.
 *
 * @example
 * ```ts
 * const report = await runChurn({ connections: 2000 });
 * console.log(report.fdBaseline, report.fdAfter, report.finalStats);
 * ```
 */
export async function runChurn(options: ChurnOptions): Promise<ChurnReport> {
  const timeout = options.timeoutMs ?? 15_000;
  const concurrency = options.concurrency ?? 32;
  const seed = options.seed ?? 1;
  const crashes = CrashMonitor.install();
  const rss = new RssSampler();
  await using dir = await tempDir("asockio-churn-");
  const { failures, fail } = failureList();
  const report: ChurnReport = {
    runtime: runtimeLabel(),
    connections: 0,
    variants: {},
    durationMs: 0,
    perSecond: 0,
    fdBaseline: -1,
    fdPeak: -1,
    fdAfter: -1,
    rssBaseline: rss.baseline,
    rssPeak: rss.baseline,
    controlRoundTrips: 0,
    finalStats: undefined,
    registeredClients: 1 + concurrency,
    crashes: 0,
    hangs: 0,
    failures,
  };
  const maxKw = 64;
  const core = new IoCore({
    listeners: [
      { transport: "tcp", hostname: "127.0.0.1", port: 0, name: "tcp" },
      { transport: "unix", path: join(dir.path, "churn.sock"), name: "unix" },
      { transport: "tcp", hostname: "127.0.0.1", port: 0, name: "raw" },
    ],
    rawConnection: ({ listener }) => listener.name === "raw",
    unknownClients: "allow",
    // Peers that end their side are closed soon after: the churn reads everything at once.
    limits: { maxKeywordBytes: maxKw, handshakeTimeoutMs: 5000, halfOpenTimeoutMs: 50 },
    logger: { error: (message: string) => fail(`core logged an error: ${message}`) },
  });
  const board = new DisconnectBoard();
  let app: AppLoop | undefined;
  let pinger: ControlPinger | undefined;
  let control: WirePeer | undefined;
  let started = performance.now();
  try {
    const [tcpAddr, unixAddr, rawAddr] = await core.listen();
    const controlId = core.addClient({ keyword: "control" });
    const slotIds: ClientId[] = [];
    for (let n = 0; n < concurrency; n++) slotIds.push(core.addClient({ keyword: `churn-${n}` }));
    const slotSet = new Set(slotIds);
    app = new AppLoop(core, (r) => {
      for (const id of r.clientsHaveDataToRead) {
        if (id === controlId) {
          echo(core, id);
          continue;
        }
        const messages = core.getMessagesFromClient(id);
        if (!slotSet.has(id)) continue; // held, unknown: read and dropped
        for (const m of messages) {
          const command = text(m);
          try {
            if (command === "close-now") core.closeClientConnection(id);
            else if (command === "close-graceful") {
              core.sendMessageToClient(id, "bye");
              core.markClientConnectionAsReadyToBeClosed(id);
            } else core.sendMessageToClient(id, m);
          } catch (err) {
            if (!(err instanceof ConnectionClosedError)) throw err;
          }
        }
      }
      for (const id of r.clientsWithDisconnectedConnection) {
        core.getMessagesFromClient(id);
        if (slotSet.has(id)) board.mark(id);
      }
    });
    control = await WirePeer.connect(targetOf(tcpAddr));
    control.send("control");
    if (text(await control.next(timeout)) !== "OK") {
      throw new Error("Cannot start the churn: control refused");
    }
    pinger = new ControlPinger(control, { intervalMs: 5, stallMs: timeout });

    const one = async (index: number, slot: number): Promise<void> => {
      const rng = new Rng(seed, index);
      const variant = CHURN_VARIANTS[rng.int(CHURN_VARIANTS.length)];
      report.variants[variant] = (report.variants[variant] ?? 0) + 1;
      const id = slotIds[slot];
      const keyword = `churn-${slot}`;
      const target = variant === "unknown client"
        ? targetOf(rawAddr)
        : rng.chance(0.5)
        ? targetOf(tcpAddr)
        : targetOf(unixAddr);
      const named = variant === "client closes" || variant === "core closes" ||
        variant === "graceful close" ||
        variant === "client half-closes";
      if (named) board.reset(id);
      const peer = await withTimeout(WirePeer.connect(target), timeout, "connect");
      try {
        const expect = async (want: string): Promise<void> => {
          const got = text(await peer.next(timeout));
          if (got !== want) {
            throw new Error(`${variant}: expected ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
          }
        };
        switch (variant) {
          case "client closes":
            peer.send(keyword, "hello");
            await expect("OK");
            await expect("hello");
            await peer.closeAfterFlush(timeout);
            break;
          case "core closes":
            // closeClientConnection discards unwritten output, so the OK is awaited first.
            peer.send(keyword);
            await expect("OK");
            peer.send("close-now");
            await peer.waitClosed(timeout);
            break;
          case "graceful close":
            peer.send(keyword, "close-graceful");
            await expect("OK");
            await expect("bye");
            await peer.waitClosed(timeout);
            break;
          case "client half-closes":
            peer.send(keyword, "last words");
            peer.closeWrite();
            await peer.waitClosed(timeout);
            break;
          case "held keyword":
            peer.send(`held-${index}`, "kept until addClient");
            await expect("OK");
            await peer.closeAfterFlush(timeout);
            break;
          case "duplicate keyword":
            peer.send("control");
            await expect("duplicate keyword");
            await peer.waitClosed(timeout);
            break;
          case "partial handshake":
            peer.write(new Uint8Array([5, 0, 0]));
            await peer.closeAfterFlush(timeout);
            break;
          case "connect and close":
            peer.close();
            break;
          case "unknown client":
            peer.write(rng.bytes(rng.range(1, 2048)));
            await peer.closeAfterFlush(timeout);
            break;
          case "oversized keyword":
            peer.write(frameHeader(maxKw + 1));
            await peer.waitClosed(timeout);
            break;
        }
        if (named) await board.wait(id, timeout, `${keyword}'s disconnection`);
      } finally {
        peer.close();
      }
    };

    const churn = async (from: number, count: number): Promise<void> => {
      let next = from;
      const end = from + count;
      await Promise.all(Array.from({ length: concurrency }, async (_, slot) => {
        while (next < end) {
          const index = next++;
          report.connections++;
          try {
            await one(index, slot);
          } catch (err) {
            if (err instanceof HangError) report.hangs++;
            fail(`connection ${index}: ${err instanceof Error ? err.message : String(err)}`);
          }
        }
      }));
    };
    const settle = (label: string) =>
      waitFor(() => core.stats().connections === 1 && core.stats().heldConnections === 0, timeout, label);

    // Warm-up: the runtimes open some descriptors (thread pools, timers) on first use.
    await churn(0, Math.min(200, options.connections));
    await settle("the warm-up connections to close");
    await delay(50); // A sleep: closed descriptors are released a little later, and no event says when.
    report.fdBaseline = report.fdPeak = openFdCount();
    report.connections = 0;
    report.variants = {};
    started = performance.now();
    let lastProgress = started;
    const sampler = setInterval(() => {
      report.fdPeak = Math.max(report.fdPeak, openFdCount());
      const now = performance.now();
      if (options.progress && now - lastProgress >= 1000) {
        lastProgress = now;
        report.durationMs = now - started;
        report.perSecond = report.connections / (report.durationMs / 1000);
        options.progress(report);
      }
    }, 100);
    try {
      await churn(1_000_000, options.connections);
    } finally {
      clearInterval(sampler);
    }
    report.durationMs = performance.now() - started;
    report.perSecond = report.connections / (report.durationMs / 1000);
    try {
      await settle("every churn connection to close");
    } catch (err) {
      fail(`leak: ${(err as Error).message}: ${JSON.stringify(core.stats())}`);
    }
    const slack = options.fdSlack ?? 4;
    try {
      await waitFor(
        () => openFdCount() <= report.fdBaseline + slack,
        5000,
        "descriptors back to the baseline",
      );
    } catch {
      // Reported below with the numbers.
    }
    report.fdAfter = openFdCount();
    if (report.fdAfter > report.fdBaseline + slack) {
      fail(`leak: ${report.fdAfter} descriptors open, baseline ${report.fdBaseline} (+${slack} allowed)`);
    }
    await pinger.stop();
    report.controlRoundTrips = pinger.roundTrips;
    for (const problem of pinger.failures) fail(problem);
    control.close();
    report.finalStats = await settledStats(core, report.registeredClients, timeout, fail);
  } catch (err) {
    fail(`churn aborted: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  } finally {
    await stopWorkload(core, { app, pinger, control });
    rss.stop();
    crashes.dispose();
  }
  report.crashes = reportCrashes(crashes, [app], fail);
  report.rssPeak = rss.peak;
  return report;
}
