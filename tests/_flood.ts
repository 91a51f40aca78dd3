/**
 * The flood workload: a child process floods a client the application does not read; the core must
 * pause it at its input cap, bound RSS and keep serving a control client.
 *
 * @module
 */
import { IoCore, type IoCoreStats } from "../mod.ts";
import { delay, HangError, KiB, MiB, tempDir, withTimeout } from "./_helpers.ts";
import { targetOf, text, WirePeer } from "./_wire_peer.ts";
import { accountingProblems, failureList, waitFor } from "./_settle.ts";
import { CrashMonitor, RssSampler } from "./_monitors.ts";
import { AppLoop, ControlPinger, echo, reportCrashes, stopWorkload } from "./_app_loop.ts";
import { type ChildPeer, FLOOD_PEER, spawnChildPeer } from "./_child_peers.ts";
import { formatBytes, runtimeLabel } from "./_script_args.ts";

/** Options for {@linkcode runFlood}. */
export interface FloodOptions {
  /** Bytes of payload the flooding child sends in all. */
  bytes: number;
  /** The core's `limits.inputBytes`. */
  inputBytes: number;
  /**
   * Payload bytes per frame.
   * @default {65536}
   */
  payloadBytes?: number;
  /**
   * How long each no-read phase lasts once the flooder is blocked, before the application drains.
   * @default {300}
   */
  holdMs?: number;
  /**
   * Bound on the whole run.
   * @default {600000}
   */
  timeoutMs?: number;
  /**
   * Force a garbage collection before each no-read phase, where the runtime allows it (Bun always;
   * Node with `--expose-gc`; Deno with `--v8-flags=--expose-gc`), to tell garbage waiting for the
   * collector apart from a leak in the whole-run peak.
   * @default {false}
   */
  collectGarbage?: boolean;
  /** Called about once a second with the report so far. */
  progress?: (report: FloodReport) => void;
}

/**
 * Runs a full garbage collection if the runtime exposes one; returns whether it did.
 */
export function collectGarbage(): boolean {
  const g = globalThis as { gc?: () => void; Bun?: { gc?: (force: boolean) => void } };
  if (typeof g.Bun?.gc === "function") {
    g.Bun.gc(true);
    return true;
  }
  if (typeof g.gc === "function") {
    g.gc();
    return true;
  }
  return false;
}

/** What a flood run measured. */
export interface FloodReport {
  /** Runtime and version. */
  runtime: string;
  /** Payload bytes the child reported sent. */
  bytesSent: number;
  /** Payload bytes the application read, checked in order. */
  bytesReceived: number;
  /** Messages read. */
  messages: number;
  /** Wall time. */
  durationMs: number;
  /** Throughput of the payload. */
  mibPerSecond: number;
  /** The core's input cap. */
  inputBytes: number;
  /** The most unread input the core held (`stats().inputBytes`). */
  peakInputBytes: number;
  /** RSS before the flood. */
  rssBaseline: number;
  /**
   * Peak RSS in the first no-read phase: the flooder sends as fast as it can, the application reads
   * nothing, and nothing was read before. (Later phases start with what was read still waiting for
   * the collector, or, once collected, kept by the allocator: RSS rarely shrinks.)
   */
  rssNoReadPeak: number;
  /** What `rssNoReadPeak - rssBaseline` must stay under: `inputBytes + 64 MiB`. */
  rssBound: number;
  /** Peak RSS over the whole run, garbage of the read phases included (reported, not bounded). */
  rssPeak: number;
  /** Whether a collection was forced before each no-read phase. */
  collectedGarbage: boolean;
  /** No-read phases in which the core paused the flooder (reading paused, the child blocked). */
  pausedPhases: number;
  /** Control round trips completed while the flooder was paused and the application did not read it. */
  controlWhilePaused: number;
  /** Control round trips in all, and the slowest. */
  controlRoundTrips: number;
  /** The slowest control round trip. */
  controlMaxLatencyMs: number;
  /** The core's counters at the end. */
  finalStats: IoCoreStats | undefined;
  /** Uncaught exceptions, unhandled rejections and errors out of ioIteration. */
  crashes: number;
  /** Everything that went wrong (capped). */
  failures: string[];
}

/**
 * A child process floods the core as fast as it can while the application does not read it, in
 * phases: the application holds off until the core has paused the flooder (and the control client
 * must keep its round trips meanwhile), then drains, and again, until `bytes` went through in order.
 * Checks unread input against the cap and RSS against `inputBytes + 64 MiB`.
 *
 * @example
 * ```ts
 * const report = await runFlood({ bytes: 4 * 1024 ** 3, inputBytes: 256 * 1024 ** 2 });
 * console.log(report.rssPeak - report.rssBaseline, report.rssBound);
 * ```
 */
export async function runFlood(options: FloodOptions): Promise<FloodReport> {
  const payload = options.payloadBytes ?? 64 * KiB;
  const holdMs = options.holdMs ?? 300;
  const timeout = options.timeoutMs ?? 600_000;
  const crashes = CrashMonitor.install();
  await using dir = await tempDir("asockio-flood-");
  const { failures, fail } = failureList();
  const core = new IoCore({
    listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }],
    limits: { inputBytes: options.inputBytes, maxMessageBytes: Math.max(payload, 1024) },
    logger: { error: (message: string) => fail(`core logged an error: ${message}`) },
  });
  let rss: RssSampler | undefined;
  const report: FloodReport = {
    runtime: runtimeLabel(),
    bytesSent: 0,
    bytesReceived: 0,
    messages: 0,
    durationMs: 0,
    mibPerSecond: 0,
    inputBytes: options.inputBytes,
    peakInputBytes: 0,
    rssBaseline: 0,
    rssNoReadPeak: 0,
    rssBound: options.inputBytes + 64 * MiB,
    rssPeak: 0,
    collectedGarbage: false,
    pausedPhases: 0,
    controlWhilePaused: 0,
    controlRoundTrips: 0,
    controlMaxLatencyMs: 0,
    finalStats: undefined,
    crashes: 0,
    failures,
  };
  let app: AppLoop | undefined;
  let pinger: ControlPinger | undefined;
  let control: WirePeer | undefined;
  let child: ChildPeer | undefined;
  const started = performance.now();
  try {
    const [addr] = await core.listen();
    const port = (addr as { port: number }).port;
    const controlId = core.addClient({ keyword: "control" });
    const floodId = core.addClient({ keyword: "flood" });
    let reading = false;
    let nextSeq = 0;
    let floodGone = false;
    const readFlood = (): void => {
      for (const m of core.getMessagesFromClient(floodId)) {
        const seq = m.length >= 4
          ? new DataView(m.buffer, m.byteOffset, m.byteLength).getUint32(0, true)
          : -1;
        if (m.length !== payload || seq !== nextSeq || m[m.length - 1] !== (seq & 0xff)) {
          fail(`flood message ${nextSeq}: got ${m.length} bytes with sequence ${seq}`);
          nextSeq = seq + 1;
        } else nextSeq++;
        report.messages++;
        report.bytesReceived += m.length;
      }
    };
    app = new AppLoop(core, (r) => {
      if (r.clientsHaveDataToRead.has(controlId)) echo(core, controlId);
      if (reading || floodGone) readFlood();
      if (r.clientsWithDisconnectedConnection.has(floodId)) {
        floodGone = true;
        readFlood();
      }
      const unread = core.stats().inputBytes;
      if (unread > report.peakInputBytes) report.peakInputBytes = unread;
    }, 10);
    control = await WirePeer.connect(targetOf(addr));
    control.send("control");
    if (text(await control.next(10_000)) !== "OK") throw new Error("Cannot start the flood: control refused");
    pinger = new ControlPinger(control, { intervalMs: 1, stallMs: 5000 });
    await delay(200); // A sleep: the pinger warms up before the memory baseline is taken.
    rss = new RssSampler(20);
    report.rssBaseline = rss.baseline;
    child = await spawnChildPeer(dir.path, "flood", FLOOD_PEER, [
      "127.0.0.1",
      String(port),
      "flood",
      String(options.bytes),
      String(payload),
    ]);
    const sent = (): number => {
      for (let i = child!.lines.length - 1; i >= 0; i--) {
        const m = /^(?:sent|done) (\d+)$/.exec(child!.lines[i]);
        if (m) return Number(m[1]);
      }
      return 0;
    };
    const childDone = (): boolean => child!.lines.some((l) => l.startsWith("done ") || l === "closed");
    const end = Date.now() + timeout;
    let lastProgress = performance.now();
    const progress = (): void => {
      report.peakInputBytes = Math.max(report.peakInputBytes, core.stats().inputBytes);
      const now = performance.now();
      if (!options.progress || now - lastProgress < 1000) return;
      lastProgress = now;
      report.bytesSent = sent();
      report.rssPeak = rss!.peak;
      report.durationMs = now - started;
      report.mibPerSecond = report.bytesReceived / MiB / (report.durationMs / 1000);
      report.controlRoundTrips = pinger!.roundTrips;
      options.progress(report);
    };
    while (!floodGone || report.bytesReceived < sent()) {
      if (Date.now() > end) throw new HangError(`Timed out after ${timeout} ms: flood not through`);
      // No-read phase: wait until the core has paused the flooder and the child is blocked.
      reading = false;
      if (options.collectGarbage && collectGarbage()) report.collectedGarbage = true;
      const first = report.pausedPhases === 0;
      let phasePeak = rss.sample();
      let lastSent = sent();
      let stableSince = Date.now();
      while (!childDone() && !floodGone && Date.now() < end) {
        await delay(10);
        progress();
        phasePeak = Math.max(phasePeak, rss.sample());
        const now = sent();
        if (now !== lastSent) {
          lastSent = now;
          stableSince = Date.now();
        }
        if (core.stats().readingPaused && Date.now() - stableSince > 50) break;
        if (Date.now() - stableSince > 5000) {
          fail("the flooder stalled without the core pausing it");
          break;
        }
      }
      if (core.stats().readingPaused && !floodGone) {
        report.pausedPhases++;
        const before = pinger.roundTrips;
        await delay(holdMs);
        progress();
        const during = pinger.roundTrips - before;
        report.controlWhilePaused += during;
        phasePeak = Math.max(phasePeak, rss.sample());
        if (first) report.rssNoReadPeak = phasePeak;
        if (during === 0) fail(`no control round trip in ${holdMs} ms while the flooder was paused`);
      }
      // Read phase: drain until the unread input is small.
      reading = true;
      const drainEnd = Date.now() + 60_000;
      while (core.stats().inputBytes > options.inputBytes / 4 && Date.now() < drainEnd) {
        await delay(5);
        progress();
      }
      if (childDone() || floodGone) {
        await waitFor(
          () => floodGone && report.bytesReceived >= sent(),
          Math.max(1000, end - Date.now()),
          "the whole flood",
        );
        break;
      }
    }
    report.bytesSent = sent();
    // The child sends whole frames: the last one may run past the planned byte count.
    const wholeFrames = Math.ceil(options.bytes / payload) * payload;
    if (report.bytesReceived !== wholeFrames || report.bytesSent !== wholeFrames) {
      fail(
        `flood: ${wholeFrames} bytes planned (whole ${payload}-byte frames), child sent ${report.bytesSent}, core delivered ${report.bytesReceived}`,
      );
    }
    await pinger.stop();
    for (const problem of pinger.failures) fail(problem);
    control.close();
    await waitFor(() => core.stats().connections === 0, 10_000, "every connection to close").catch(() => {});
    report.finalStats = core.stats();
    for (const problem of accountingProblems(report.finalStats, { connections: 0, clients: 2 })) {
      fail(`leak: ${problem}`);
    }
  } catch (err) {
    fail(`flood aborted: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  } finally {
    child?.kill("SIGKILL");
    if (child) await withTimeout(child.exited, 5000, "the flood child to exit").catch(() => {});
    await stopWorkload(core, { app, pinger, control });
    rss?.stop();
    crashes.dispose();
  }
  report.durationMs = performance.now() - started;
  report.mibPerSecond = report.bytesReceived / MiB / (report.durationMs / 1000);
  report.rssPeak = rss?.peak ?? 0;
  report.controlRoundTrips = pinger?.roundTrips ?? 0;
  report.controlMaxLatencyMs = pinger?.maxLatencyMs ?? 0;
  if (report.peakInputBytes > options.inputBytes + MiB) {
    fail(`unread input reached ${report.peakInputBytes} bytes, over the cap ${options.inputBytes} + 1 MiB`);
  }
  if (report.pausedPhases === 0) fail("the core never paused the flooder");
  if (report.rssNoReadPeak - report.rssBaseline >= report.rssBound) {
    fail(
      `RSS grew by ${
        formatBytes(report.rssNoReadPeak - report.rssBaseline)
      } while the application did not read, over inputBytes + 64 MiB = ${formatBytes(report.rssBound)}`,
    );
  }
  report.crashes = reportCrashes(crashes, [app], fail);
  return report;
}
