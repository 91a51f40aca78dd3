/**
 * The fuzzer: mutated frame streams, handshakes and PROXY headers (see `_fuzz_plan.ts`) through real
 * sockets into a running IoCore, with a control client measuring round trips all along.
 *
 * @module
 */
import { join } from "node:path";
import {
  type ClientId,
  ConnectionClosedError,
  type ConnectOptions,
  encodeFrame,
  IoCore,
  type IoCoreListenerOptions,
  type IoCoreStats,
  type IoIterationResult,
  MessageTooLargeError,
  nativeTransport,
} from "../mod.ts";
import { HangError, MiB, tempDir, withTimeout } from "./_helpers.ts";
import { targetOf, text, WirePeer } from "./_wire_peer.ts";
import { fnv, FNV_OFFSET, messageHash } from "./_stream_check.ts";
import { failureList, macrotask, settledStats, waitFor, wakeOrTimeout } from "./_settle.ts";
import { CrashMonitor, RssSampler } from "./_monitors.ts";
import { AppLoop, ControlPinger, echo, reportCrashes, stopWorkload } from "./_app_loop.ts";
import { formatBytes, runtimeLabel } from "./_script_args.ts";
import {
  CHALLENGE,
  CHALLENGE_PREFIX,
  DEFAULT_FUZZ_LIMITS,
  FRAMED_ACK,
  type FuzzLimits,
  type FuzzPlan,
  fuzzPlan,
  HANDSHAKE_KEYWORDS,
  NO_ANSWER,
  RAW_ACK,
  RAW_SWITCH_MAGIC,
  SECRET_KEYWORD,
} from "./_fuzz_plan.ts";

const encoder = new TextEncoder();

function answerMatches(answers: readonly string[], message: Uint8Array | undefined): boolean {
  if (message === undefined) return answers.includes(NO_ANSWER);
  const got = text(message);
  if (answers.includes(CHALLENGE) && got.startsWith(CHALLENGE_PREFIX)) return true;
  return answers.includes(got);
}

function rawSwitchLength(message: Uint8Array): number | undefined {
  if (message.length <= RAW_SWITCH_MAGIC.length) return undefined;
  for (let i = 0; i < RAW_SWITCH_MAGIC.length; i++) if (message[i] !== RAW_SWITCH_MAGIC[i]) return undefined;
  const n = Number(text(message.subarray(RAW_SWITCH_MAGIC.length)));
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/** What the fuzz server saw on one stream connection. */
interface StreamState {
  messages: number;
  hash: number;
  rawBytes: number;
  rawHash: number;
  raw: boolean;
  rawUntil: number;
  errors: string[];
}

interface StreamRecord {
  state: StreamState;
  lastError: Error | undefined;
}

/** The application side of the fuzz run: echoes the control client, tallies every stream. */
class FuzzServer {
  readonly core: IoCore;
  readonly controlId: ClientId;
  readonly streams = new Map<ClientId, "framed" | "raw">();
  readonly unknown = new Set<ClientId>();
  unknownBytes = 0;
  readonly #states = new Map<ClientId, StreamState>();
  readonly #records = new Map<ClientId, StreamRecord>();
  readonly #waiters = new Map<ClientId, () => void>();

  constructor(core: IoCore, controlId: ClientId) {
    this.core = core;
    this.controlId = controlId;
  }

  onResult = (r: IoIterationResult): void => {
    for (const id of r.newlyConnectedUnknownClients) this.unknown.add(id);
    for (const id of r.clientsHaveDataToRead) this.#read(id);
    for (const id of r.clientsWithDisconnectedConnection) {
      this.#read(id);
      if (this.unknown.delete(id) || !this.streams.has(id)) continue;
      const state = this.#states.get(id) ?? newStreamState(this.streams.get(id) === "raw");
      this.#states.delete(id);
      this.#records.set(id, { state, lastError: this.core.getClientInfo(id)?.lastError });
      const wake = this.#waiters.get(id);
      this.#waiters.delete(id);
      wake?.();
    }
  };

  /** Forgets the last record of `id`, before a new connection for it. */
  prepare(id: ClientId): void {
    this.#records.delete(id);
    this.#states.delete(id);
  }

  /** Waits for the server side of `id`'s connection to be over. */
  async waitRecord(id: ClientId, timeoutMs: number): Promise<StreamRecord> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const record = this.#records.get(id);
      if (record) {
        this.#records.delete(id);
        return record;
      }
      const left = end - Date.now();
      if (left <= 0) {
        throw new HangError(
          `Timed out after ${timeoutMs} ms waiting for the core to report the disconnection`,
        );
      }
      await wakeOrTimeout(Math.min(left, 100), (wake) => this.#waiters.set(id, wake));
    }
  }

  #read(id: ClientId): void {
    if (id === this.controlId) {
      echo(this.core, id);
      return;
    }
    const messages = this.core.getMessagesFromClient(id);
    if (messages.length === 0) return;
    if (this.unknown.has(id)) {
      for (const m of messages) this.unknownBytes += m.length;
      return;
    }
    const kind = this.streams.get(id);
    if (kind === undefined) return; // handshake keywords: read and dropped
    let st = this.#states.get(id);
    if (!st) this.#states.set(id, st = newStreamState(kind === "raw"));
    for (const m of messages) {
      if (st.raw) {
        st.rawBytes += m.length;
        st.rawHash = fnv(st.rawHash, m);
        if (kind === "framed" && st.rawBytes >= st.rawUntil) {
          if (st.rawBytes > st.rawUntil) {
            st.errors.push(`raw segment overran by ${st.rawBytes - st.rawUntil} bytes`);
          }
          st.raw = false;
          this.#switch(id, false, FRAMED_ACK);
        }
        continue;
      }
      st.messages++;
      st.hash = messageHash(st.hash, m);
      const n = rawSwitchLength(m);
      if (n !== undefined) {
        st.raw = true;
        st.rawUntil = st.rawBytes + n;
        this.#switch(id, true, RAW_ACK);
      }
    }
  }

  #switch(id: ClientId, raw: boolean, ack: string): void {
    try {
      // The ack is always framed: queued before switching to raw, after switching back.
      if (raw) this.core.sendMessageToClient(id, ack);
      this.core.switchClientRawConnectionMode(id, raw);
      if (!raw) this.core.sendMessageToClient(id, ack);
    } catch (err) {
      if (!(err instanceof ConnectionClosedError)) throw err;
    }
  }
}

function newStreamState(raw: boolean): StreamState {
  return { messages: 0, hash: FNV_OFFSET, rawBytes: 0, rawHash: FNV_OFFSET, raw, rawUntil: 0, errors: [] };
}

/** Options for {@linkcode runFuzz}. */
export interface FuzzOptions {
  /** Stop planning connections once this many cases are planned. */
  cases: number;
  /** The seed: the same seed gives the same connections. */
  seed: number;
  /**
   * Connections in flight at once.
   * @default {12}
   */
  concurrency?: number;
  /** Override the fuzz core's limits. */
  limits?: Partial<FuzzLimits>;
  /**
   * Bound on each connection (and each wait in it); past it the connection counts as a hang.
   * @default {15000}
   */
  connectionTimeoutMs?: number;
  /** Replay this one connection index alone. */
  only?: number;
  /**
   * The most RSS may grow over its value at the start; past it the run fails (a leak that grows
   * with the cases would cross it long before 1M cases).
   * @default {536870912} (512 MiB)
   */
  maxRssGrowth?: number;
  /** Called about once a second with the report so far. */
  progress?: (report: FuzzReport) => void;
}

/**
 * What a fuzz run did. A *case* is one generated frame unit written into a live core connection
 * (a valid or mutated frame: bit flips, truncation, lengths of 0, 2^64−1 and maxMessageBytes−1/0/+1,
 * garbage, random splits, raw-mode switches), one raw chunk written to a raw connection, or one
 * mutated handshake on its own connection. Cases after a fatal one are never generated.
 */
export interface FuzzReport {
  /** Runtime and version. */
  runtime: string;
  /** The seed. */
  seed: number;
  /** All cases run. */
  cases: number;
  /** Frame cases (valid or mutated frames). */
  frameCases: number;
  /** Raw chunks written to raw connections. */
  rawCases: number;
  /** Mutated handshakes, one connection each. */
  handshakeCases: number;
  /** PROXY headers (valid or mutated) to the PROXY listener, one connection each. */
  proxyCases: number;
  /** Of those, headers the core must refuse or leave unanswered (mutated or cut short). */
  proxyRefusedCases: number;
  /**
   * PROXY connections whose header and keyword took the peer longer than half the handshake timeout
   * to write (a loaded machine), and which the core closed unanswered: its timeout is right there too.
   */
  proxyLateCases: number;
  /** The same for handshake connections: closed unanswered after writes slower than half the timeout. */
  handshakeLateCases: number;
  /** Connections made. */
  connections: number;
  /** Bytes written into the core. */
  bytesSent: number;
  /** Wall time. */
  durationMs: number;
  /** cases / duration. */
  casesPerSecond: number;
  /** Uncaught exceptions, unhandled rejections, errors out of ioIteration and error log lines. */
  crashes: number;
  /** Connections whose expected outcome did not come within the bound. */
  hangs: number;
  /** Connections whose outcome differed from the oracle's prediction. */
  mismatches: number;
  /** Control round trips completed during the run. */
  controlRoundTrips: number;
  /** The slowest control round trip. */
  controlMaxLatencyMs: number;
  /** RSS at start. */
  baselineRss: number;
  /** Peak RSS. */
  peakRss: number;
  /** The core's counters after the run (all connections closed, the control stopped). */
  finalStats: IoCoreStats | undefined;
  /** Everything that went wrong, first ones first (capped). */
  failures: string[];
}

interface FuzzSlot {
  n: number;
  generation: number;
  id: ClientId;
  rawId: ClientId;
  keyword: string;
  rawKeyword: string;
}

async function ipv6Loopback(): Promise<boolean> {
  try {
    const listener = await nativeTransport().listen(
      { transport: "tcp", hostname: "::1", port: 0 },
      (c) => c.close(),
    );
    await listener.close();
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs the fuzzer: a core with small limits listening on TCP (IPv4, and IPv6 when the machine has
 * `::1`), a UNIX socket, a raw listener and a PROXY protocol listener trusting 127.0.0.1; a control client doing round trips all along; and
 * `concurrency` connections at a time, each carrying a {@linkcode FuzzPlan}. Every stream connection is
 * checked against an independent oracle (messages, their hash, raw bytes, the close reason).
 *
 * @example
 * ```ts
 * const report = await runFuzz({ cases: 20_000, seed: 1 });
 * if (report.failures.length) console.error(report.failures);
 * ```
 */
export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const limits: FuzzLimits = { ...DEFAULT_FUZZ_LIMITS, ...options.limits };
  const timeout = options.connectionTimeoutMs ?? 15_000;
  const crashes = CrashMonitor.install();
  const rss = new RssSampler();
  await using dir = await tempDir("asockio-fuzz-");
  const { failures, fail } = failureList();
  let loggedErrors = 0;
  const report: FuzzReport = {
    runtime: runtimeLabel(),
    seed: options.seed,
    cases: 0,
    frameCases: 0,
    rawCases: 0,
    handshakeCases: 0,
    proxyCases: 0,
    proxyRefusedCases: 0,
    proxyLateCases: 0,
    handshakeLateCases: 0,
    connections: 0,
    bytesSent: 0,
    durationMs: 0,
    casesPerSecond: 0,
    crashes: 0,
    hangs: 0,
    mismatches: 0,
    controlRoundTrips: 0,
    controlMaxLatencyMs: 0,
    baselineRss: rss.baseline,
    peakRss: rss.baseline,
    finalStats: undefined,
    failures,
  };
  const started = performance.now();
  const listeners: IoCoreListenerOptions[] = [
    { transport: "tcp", hostname: "127.0.0.1", port: 0, name: "tcp4" },
    { transport: "unix", path: join(dir.path, "fuzz.sock"), name: "unix" },
    { transport: "tcp", hostname: "127.0.0.1", port: 0, name: "raw" },
    {
      transport: "tcp",
      hostname: "127.0.0.1",
      port: 0,
      name: "proxy",
      proxyProtocol: { trusted: ["127.0.0.1/32"] },
    },
  ];
  const hasIpv6 = await ipv6Loopback();
  if (hasIpv6) listeners.push({ transport: "tcp", hostname: "::1", port: 0, name: "tcp6" });
  const core = new IoCore({
    listeners,
    rawConnection: ({ listener }) => listener.name === "raw",
    unknownClients: "allow",
    limits: {
      maxMessageBytes: limits.maxMessageBytes,
      maxKeywordBytes: limits.maxKeywordBytes,
      inputBytes: limits.inputBytes,
      handshakeTimeoutMs: limits.handshakeTimeoutMs,
      closeTimeoutMs: 5000,
      // Half-closing peers wait for the core's close; the fuzz core reads everything at once.
      halfOpenTimeoutMs: 50,
    },
    logger: {
      error: (message: string, ...details: unknown[]) => {
        loggedErrors++;
        fail(`core logged an error: ${message} ${details.map(String).join(" ")}`);
      },
    },
  });
  let app: AppLoop | undefined;
  let pinger: ControlPinger | undefined;
  let control: WirePeer | undefined;
  try {
    const addrs = await core.listen();
    const targets: Record<FuzzPlan["target"] | "raw", ConnectOptions> = {
      tcp4: targetOf(addrs[0]),
      unix: targetOf(addrs[1]),
      raw: targetOf(addrs[2]),
      proxy: targetOf(addrs[3]),
      tcp6: targetOf(hasIpv6 ? addrs[4] : addrs[0]),
    };
    const controlId = core.addClient({ keyword: "control" });
    const server = new FuzzServer(core, controlId);
    for (let i = 0; i < HANDSHAKE_KEYWORDS; i++) {
      core.addClient({ keyword: `hs-${i}` });
      core.addClient({ keyword: `hsr-${i}`, raw: true });
    }
    core.addClient({ keyword: SECRET_KEYWORD, secret: "fuzz secret" });
    app = new AppLoop(core, server.onResult, 20);
    control = await WirePeer.connect(targets.tcp4);
    control.send("control");
    if (text(await control.next(timeout)) !== "OK") {
      throw new Error("Cannot start the fuzz run: control refused");
    }
    pinger = new ControlPinger(control, { intervalMs: 5, stallMs: timeout });

    const concurrency = options.only === undefined ? (options.concurrency ?? 12) : 1;
    const slots: FuzzSlot[] = [];
    const register = (slot: FuzzSlot): void => {
      slot.keyword = `fz-${slot.n}-${slot.generation}`;
      slot.rawKeyword = `fzr-${slot.n}-${slot.generation}`;
      slot.id = core.addClient({ keyword: slot.keyword });
      slot.rawId = core.addClient({ keyword: slot.rawKeyword, raw: true });
      server.streams.set(slot.id, "framed");
      server.streams.set(slot.rawId, "raw");
    };
    const retire = (slot: FuzzSlot): void => {
      // After a hang the old keyword may still be bound: give the slot fresh ones.
      core.removeClient(slot.id);
      core.removeClient(slot.rawId);
      server.streams.delete(slot.id);
      server.streams.delete(slot.rawId);
      slot.generation++;
      register(slot);
    };
    for (let n = 0; n < concurrency; n++) {
      const slot: FuzzSlot = { n, generation: 0, id: 0, rawId: 0, keyword: "", rawKeyword: "" };
      register(slot);
      slots.push(slot);
    }
    const registered = 1 + 2 * HANDSHAKE_KEYWORDS + 1 + 2 * concurrency;

    let nextIndex = 0;
    let planned = 0;
    const claim = (): FuzzPlan | undefined => {
      if (options.only !== undefined) {
        return nextIndex++ === 0 ? fuzzPlan(options.seed, options.only, limits) : undefined;
      }
      if (planned >= options.cases) return undefined;
      const plan = fuzzPlan(options.seed, nextIndex++, limits);
      planned += plan.frameCases + plan.rawCases + plan.handshakeCases + plan.proxyCases;
      return plan;
    };
    let unknownSent = 0;

    const runStream = async (plan: FuzzPlan, slot: FuzzSlot): Promise<string[]> => {
      const raw = plan.kind === "raw";
      const id = raw ? slot.rawId : slot.id;
      server.prepare(id);
      const peer = await withTimeout(WirePeer.connect(targets[plan.target]), timeout, "connect");
      const problems: string[] = [];
      try {
        let okSeen = false;
        const takeOk = async (): Promise<void> => {
          if (okSeen) return;
          okSeen = true;
          const m = await peer.next(timeout);
          if (text(m) !== "OK") problems.push(`handshake answered ${JSON.stringify(text(m))}, expected "OK"`);
        };
        peer.write(encodeFrame(encoder.encode(raw ? slot.rawKeyword : slot.keyword)));
        if (!plan.pipelined) await takeOk();
        for (const step of plan.steps) {
          if (step.op === "write") {
            if (!peer.write(step.bytes)) {
              // The fatal header may go out in the same native write as earlier bytes.
              if (!plan.expect.fatal) problems.push("the core closed the connection before the stream ended");
              break;
            }
          } else if (step.op === "yield") await macrotask();
          else {
            await takeOk();
            const m = await peer.next(timeout);
            if (!answerMatches(step.answers, m)) {
              problems.push(
                `expected ${step.answers.join(" or ")}, got ${JSON.stringify(text(m).slice(0, 40))}`,
              );
              break;
            }
          }
        }
        if (plan.ending === "half-close") peer.closeWrite();
        else if (plan.ending === "close") {
          await takeOk();
          await peer.closeAfterFlush(timeout);
        }
        const record = await server.waitRecord(id, timeout);
        const st = record.state;
        const want = plan.expect;
        const mismatch = messagesMismatch(st, want);
        if (mismatch) problems.push(mismatch);
        if (st.rawBytes !== want.rawBytes || st.rawHash !== want.rawHash) {
          problems.push(
            `core delivered ${st.rawBytes} raw bytes, oracle expects ${want.rawBytes} (or their hash differs)`,
          );
        }
        problems.push(...st.errors);
        if (want.fatal && !(record.lastError instanceof MessageTooLargeError)) {
          problems.push(
            `expected a MessageTooLargeError, the connection ended with ${record.lastError ?? "no error"}`,
          );
        }
        if (!want.fatal && record.lastError) problems.push(`the connection ended with ${record.lastError}`);
        if (plan.ending !== "close") await peer.waitClosed(timeout);
        if (plan.ending !== "fatal") await takeOk();
      } finally {
        peer.close();
      }
      return problems;
    };

    const runHandshake = async (plan: FuzzPlan): Promise<string[]> => {
      const peer = await withTimeout(WirePeer.connect(targets[plan.target]), timeout, "connect");
      const problems: string[] = [];
      const started = performance.now();
      /** The handshake's writes took long enough for the core's handshake timeout to close it silently. */
      let late = false;
      let answered = false;
      try {
        for (const step of plan.steps) {
          if (step.op === "write") {
            peer.write(step.bytes);
            // On a loaded machine the yields can stretch the handshake past the core's timeout.
            if (!answered && performance.now() - started > limits.handshakeTimeoutMs / 2) late = true;
          } else if (step.op === "yield") await macrotask();
          else {
            answered = true;
            const m = await peer.next(timeout);
            if (m === undefined && late) {
              report.handshakeLateCases++;
              return problems;
            }
            if (!answerMatches(step.answers, m)) {
              problems.push(
                `expected ${step.answers.join(" or ")}, got ${JSON.stringify(text(m).slice(0, 40))}`,
              );
              return problems;
            }
          }
        }
        const final = plan.finalAnswers;
        const mustAnswer = !final.includes(NO_ANSWER);
        if (plan.ending === "close") {
          if (mustAnswer) await peer.until(() => peer.pending > 0 || peer.closed, timeout, "an answer");
          await peer.closeAfterFlush(timeout);
        } else {
          if (plan.ending === "half-close") peer.closeWrite();
          await peer.waitClosed(plan.ending === "stall" ? limits.handshakeTimeoutMs + timeout : timeout);
        }
        if (plan.ending === "close" && !mustAnswer) return problems;
        const answer = peer.take();
        if (answer === undefined && late && !answered && !final.includes(NO_ANSWER)) {
          report.handshakeLateCases++;
        } else if (!answerMatches(final, answer)) {
          problems.push(`expected ${final.join(" or ")}, got ${JSON.stringify(text(answer).slice(0, 40))}`);
        } else if (peer.pending > 0) {
          problems.push(`unexpected extra answer ${JSON.stringify(text(peer.take()).slice(0, 40))}`);
        }
      } finally {
        peer.close();
      }
      return problems;
    };

    const runUnknown = async (plan: FuzzPlan): Promise<string[]> => {
      const peer = await withTimeout(WirePeer.connect(targets.raw), timeout, "connect");
      const problems: string[] = [];
      try {
        for (const step of plan.steps) {
          if (step.op === "write") {
            if (peer.write(step.bytes)) unknownSent += step.bytes.length;
            else problems.push("the core closed an unknown client's connection");
          } else if (step.op === "yield") await macrotask();
        }
        if (plan.ending === "half-close") {
          peer.closeWrite();
          await peer.waitClosed(timeout);
        } else await peer.closeAfterFlush(timeout);
        if (peer.receivedBytes !== 0) {
          problems.push(`the core sent ${peer.receivedBytes} bytes to an unknown client`);
        }
      } finally {
        peer.close();
      }
      return problems;
    };

    const runProxy = async (plan: FuzzPlan): Promise<string[]> => {
      const { keyword, source, truncated: cut, handshakeBytes } = plan.proxy!;
      // Its own keyword, admitting any address: the header's source decides what the rules see.
      const id = core.addClient({ keyword, allow: [{ cidr: ["0.0.0.0/0", "::/0"] }] });
      server.streams.set(id, "framed");
      server.prepare(id);
      const problems: string[] = [];
      let final = plan.finalAnswers;
      let peer: WirePeer | undefined;
      let late = false;
      try {
        peer = await withTimeout(WirePeer.connect(targets.proxy), timeout, "connect");
        const started = performance.now();
        let written = 0;
        for (const step of plan.steps) {
          // After a refusal the core has closed: the rest is written into the void, as a peer would.
          if (step.op === "write") {
            const before = written;
            peer.write(step.bytes);
            written += step.bytes.length;
            // On a loaded machine the yields can stretch the handshake past the core's timeout.
            if (
              before < handshakeBytes && written >= handshakeBytes &&
              performance.now() - started > limits.handshakeTimeoutMs / 2
            ) {
              late = true;
              if (!final.includes(NO_ANSWER)) final = [...final, NO_ANSWER];
            }
          } else if (step.op === "yield") await macrotask();
        }
        if (plan.ending === "half-close") peer.closeWrite();
        else if (plan.ending === "close" && !cut) {
          // Wait for the answer first: a close before it arrives may reset what is still unread.
          await peer.until(() => peer!.pending > 0 || peer!.closed, timeout, "an answer or the close");
        }
        if (plan.ending === "close") await peer.closeAfterFlush(timeout);
        else {
          await peer.until(
            () => peer!.pending > 0 || peer!.closed,
            plan.ending === "stall" ? limits.handshakeTimeoutMs + timeout : timeout,
            "an answer or the close",
          );
        }
        const answer = peer.take();
        if (plan.ending !== "close" || !cut) {
          if (!answerMatches(final, answer)) {
            problems.push(`expected ${final.join(" or ")}, got ${JSON.stringify(text(answer).slice(0, 40))}`);
            return problems;
          }
        }
        if (answer === undefined) {
          if (late && !plan.finalAnswers.includes(NO_ANSWER)) report.proxyLateCases++;
          // Refused or unanswered: nothing past the header was read, and no client was admitted.
          if (plan.ending !== "close") await peer.waitClosed(timeout);
          const info = core.getClientInfo(id);
          if (info?.remoteAddr !== undefined || info?.state !== "disconnected") {
            problems.push(`a header expected to be refused admitted the client (${info?.state})`);
          }
          return problems;
        }
        const record = await server.waitRecord(id, timeout);
        const st = record.state;
        const want = plan.expect;
        const mismatch = messagesMismatch(st, want);
        if (mismatch) problems.push(mismatch);
        if (record.lastError) problems.push(`the connection ended with ${record.lastError}`);
        const addr = core.getClientInfo(id)?.remoteAddr;
        const got = addr?.transport === "tcp" ? `${addr.hostname} port ${addr.port}` : JSON.stringify(addr);
        if (source && got !== `${source.hostname} port ${source.port}`) {
          problems.push(`remoteAddr is ${got}, the header says ${source.hostname} port ${source.port}`);
        } else if (!source && !(addr?.transport === "tcp" && addr.hostname === "127.0.0.1")) {
          problems.push(`remoteAddr is ${got}, expected the balancer's own 127.0.0.1 (LOCAL or UNKNOWN)`);
        }
        if (plan.ending !== "close") await peer.waitClosed(timeout);
        if (peer.pending > 0) problems.push(`unexpected extra answer ${JSON.stringify(text(peer.take()))}`);
      } finally {
        peer?.close();
        core.removeClient(id);
        server.streams.delete(id);
        server.prepare(id);
      }
      return problems;
    };

    const runSlot = async (slot: FuzzSlot): Promise<void> => {
      for (let plan = claim(); plan; plan = claim()) {
        report.connections++;
        report.frameCases += plan.frameCases;
        report.rawCases += plan.rawCases;
        report.handshakeCases += plan.handshakeCases;
        report.proxyCases += plan.proxyCases;
        if (plan.kind === "proxy" && plan.finalAnswers[0] === NO_ANSWER) report.proxyRefusedCases++;
        report.cases += plan.frameCases + plan.rawCases + plan.handshakeCases + plan.proxyCases;
        report.bytesSent += plan.bytes;
        const where = `seed ${options.seed} connection ${plan.index} (${plan.label}, ${plan.target})`;
        try {
          const problems = plan.kind === "handshake"
            ? await runHandshake(plan)
            : plan.kind === "unknown"
            ? await runUnknown(plan)
            : plan.kind === "proxy"
            ? await runProxy(plan)
            : await runStream(plan, slot);
          if (problems.length) {
            report.mismatches++;
            fail(`mismatch at ${where}: ${problems.join("; ")}`);
          }
        } catch (err) {
          if (err instanceof HangError) {
            report.hangs++;
            fail(`hang at ${where}: ${err.message}`);
            retire(slot); // same client count: two removed, two added
          } else {
            report.mismatches++;
            fail(`error at ${where}: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
          }
        }
      }
    };

    let lastProgress = performance.now();
    const progressTimer = setInterval(() => {
      if (!options.progress) return;
      const now = performance.now();
      if (now - lastProgress < 900) return;
      lastProgress = now;
      report.durationMs = now - started;
      report.casesPerSecond = report.cases / (report.durationMs / 1000);
      report.controlRoundTrips = pinger!.roundTrips;
      report.controlMaxLatencyMs = pinger!.maxLatencyMs;
      report.peakRss = rss.peak;
      report.crashes = crashes.total + app!.errors.length + loggedErrors;
      options.progress(report);
    }, 250);
    try {
      await Promise.all(slots.map(runSlot));
    } finally {
      clearInterval(progressTimer);
    }

    // Quiescence: every fuzz connection gone, then the control stopped, then accounting at zero.
    try {
      await waitFor(
        () => core.stats().connections === 1 && core.stats().heldConnections === 0,
        timeout,
        "idle core",
      );
    } catch (err) {
      fail(`leak: ${(err as Error).message}: ${JSON.stringify(core.stats())}`);
    }
    try {
      await waitFor(() => server.unknownBytes === unknownSent, timeout, "the unknown clients' bytes");
    } catch {
      // Reported just below with the numbers.
    }
    await pinger.stop();
    if (server.unknownBytes !== unknownSent) {
      report.mismatches++;
      fail(`unknown clients: the core delivered ${server.unknownBytes} bytes, ${unknownSent} were sent`);
    }
    control.close();
    report.finalStats = await settledStats(core, registered, timeout, fail);
    for (const problem of pinger.failures) fail(problem);
    if (pinger.stalls) fail(`control: ${pinger.stalls} round trips took longer than ${timeout} ms`);
    report.controlRoundTrips = pinger.roundTrips;
    report.controlMaxLatencyMs = pinger.maxLatencyMs;
  } catch (err) {
    fail(`fuzz run aborted: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  } finally {
    await stopWorkload(core, { app, pinger, control });
    rss.stop();
    crashes.dispose();
  }
  report.crashes = reportCrashes(crashes, [app], fail) + loggedErrors;
  report.durationMs = performance.now() - started;
  report.casesPerSecond = report.cases / (report.durationMs / 1000);
  report.peakRss = rss.peak;
  const maxGrowth = options.maxRssGrowth ?? 512 * MiB;
  if (report.peakRss - report.baselineRss > maxGrowth) {
    fail(
      `RSS grew by ${formatBytes(report.peakRss - report.baselineRss)}, more than ${formatBytes(maxGrowth)}`,
    );
  }
  return report;
}

/** How the messages the core delivered differ from the oracle's count and hash, or `undefined`. */
function messagesMismatch(
  got: { messages: number; hash: number },
  want: { messages: number; hash: number },
): string | undefined {
  if (got.messages === want.messages && got.hash === want.hash) return undefined;
  return `core delivered ${got.messages} messages (hash ${
    got.hash.toString(16)
  }), oracle expects ${want.messages} (hash ${want.hash.toString(16)})`;
}
