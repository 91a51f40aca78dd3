/**
 * The soak workload: sequence-numbered, checksummed messages core to core, then graceful closes that
 * must deliver their tails.
 *
 * @module
 */
import { IoCore } from "../mod.ts";
import { delay, HangError } from "./_helpers.ts";
import { targetOf, text } from "./_wire_peer.ts";
import { fnv, FNV_OFFSET } from "./_stream_check.ts";
import { accountingProblems, failureList } from "./_settle.ts";
import { CrashMonitor, RssSampler } from "./_monitors.ts";
import { AppLoop, reportCrashes } from "./_app_loop.ts";
import { runtimeLabel } from "./_script_args.ts";

/**
 * Message `seq` of the soak: seq (u32), size (u32), FNV-1a of the body (u32), then 0..127 body bytes.
 */
export function soakMessage(seq: number): Uint8Array {
  const size = 12 + ((Math.imul(seq, 2654435761) >>> 24) & 127);
  const m = new Uint8Array(size);
  for (let i = 12; i < size; i++) m[i] = (seq + i * 31) & 0xff;
  const view = new DataView(m.buffer);
  view.setUint32(0, seq, true);
  view.setUint32(4, size, true);
  view.setUint32(8, fnv(FNV_OFFSET, m.subarray(12)), true);
  return m;
}

/** Checks messages of one direction of the soak: order, duplicates, gaps and checksums. */
class SoakChecker {
  next = 0;
  received = 0;
  lost = 0;
  duplicatedOrLate = 0;
  corrupt = 0;
  readonly #label: string;
  readonly #fail: (message: string) => void;

  constructor(label: string, fail: (message: string) => void) {
    this.#label = label;
    this.#fail = fail;
  }

  check(m: Uint8Array): void {
    this.received++;
    const view = new DataView(m.buffer, m.byteOffset, m.byteLength);
    if (
      m.length < 12 || view.getUint32(4, true) !== m.length ||
      view.getUint32(8, true) !== fnv(FNV_OFFSET, m.subarray(12))
    ) {
      if (this.corrupt++ < 3) this.#fail(`${this.#label}: corrupt message after sequence ${this.next - 1}`);
      return;
    }
    const seq = view.getUint32(0, true);
    if (seq === this.next) {
      this.next++;
    } else if (seq > this.next) {
      if (this.lost === 0) this.#fail(`${this.#label}: expected sequence ${this.next}, got ${seq}`);
      this.lost += seq - this.next;
      this.next = seq + 1;
    } else {
      if (this.duplicatedOrLate++ < 3) {
        this.#fail(`${this.#label}: sequence ${seq} again after ${this.next - 1}`);
      }
    }
  }
}

/** Options for {@linkcode runSoak}. */
export interface SoakOptions {
  /** Messages the client core sends (each echoed back by the server core). */
  messages: number;
  /**
   * Messages in flight (sent, not yet echoed) at most.
   * @default {20000}
   */
  window?: number;
  /**
   * Messages per send call.
   * @default {2000}
   */
  batch?: number;
  /**
   * Messages queued right before each graceful close (server to client, then client to server).
   * @default {100000}
   */
  tail?: number;
  /**
   * Bound on the whole run.
   * @default {900000}
   */
  timeoutMs?: number;
  /** Called about once a second with the report so far. */
  progress?: (report: SoakReport) => void;
}

/** One direction's tally. */
export interface SoakDirection {
  /** Messages checked. */
  received: number;
  /** Missing sequence numbers. */
  lost: number;
  /** Sequence numbers seen again or out of order. */
  duplicatedOrLate: number;
  /** Messages whose size or checksum was wrong. */
  corrupt: number;
}

/** What a soak run measured. */
export interface SoakReport {
  /** Runtime and version. */
  runtime: string;
  /** Messages sent client to server (and echoed back). */
  messages: number;
  /** Payload bytes client to server. */
  bytes: number;
  /** Wall time of the main phase. */
  durationMs: number;
  /** Round-tripped messages per second in the main phase. */
  perSecond: number;
  /** Client to server, as the server checked it. */
  toServer: SoakDirection;
  /** The echoes, as the client checked them. */
  echoes: SoakDirection;
  /** The server's tail before its graceful close, as the client checked it. */
  serverTail: SoakDirection & { sent: number; cleanClose: boolean };
  /** The client's tail before its graceful close, as the server checked it. */
  clientTail: SoakDirection & { sent: number; cleanClose: boolean };
  /** RSS before and at peak. */
  rssBaseline: number;
  /** Peak RSS. */
  rssPeak: number;
  /** Uncaught exceptions, unhandled rejections and errors out of ioIteration. */
  crashes: number;
  /** Everything that went wrong (capped). */
  failures: string[];
}

function direction(c: SoakChecker): SoakDirection {
  return { received: c.received, lost: c.lost, duplicatedOrLate: c.duplicatedOrLate, corrupt: c.corrupt };
}

/**
 * A client core sends `messages` sequence-numbered, checksummed messages to a server core, which
 * checks and echoes them; the client checks the echoes. Then the server queues `tail` messages and
 * closes gracefully (`markClientConnectionAsReadyToBeClosed`), and the client must get them all
 * before the disconnection; then the client reconnects and does the same the other way.
 *
 * @example
 * ```ts
 * const report = await runSoak({ messages: 200_000, tail: 20_000 });
 * console.log(report.perSecond, report.toServer.lost, report.serverTail.received);
 * ```
 */
export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const total = options.messages;
  const window = options.window ?? 20_000;
  const batch = options.batch ?? 2000;
  const tail = options.tail ?? 100_000;
  const timeout = options.timeoutMs ?? 900_000;
  const crashes = CrashMonitor.install();
  const rss = new RssSampler();
  const { failures, fail } = failureList();
  const logger = { error: (message: string) => fail(`core logged an error: ${message}`) };
  const server = new IoCore({ listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }], logger });
  const client = new IoCore({ logger });
  const toServer = new SoakChecker("client to server", fail);
  const echoes = new SoakChecker("echoes", fail);
  const serverTail = new SoakChecker("server tail", fail);
  const clientTail = new SoakChecker("client tail", fail);
  const report: SoakReport = {
    runtime: runtimeLabel(),
    messages: 0,
    bytes: 0,
    durationMs: 0,
    perSecond: 0,
    toServer: direction(toServer),
    echoes: direction(echoes),
    serverTail: { ...direction(serverTail), sent: 0, cleanClose: false },
    clientTail: { ...direction(clientTail), sent: 0, cleanClose: false },
    rssBaseline: rss.baseline,
    rssPeak: rss.baseline,
    crashes: 0,
    failures,
  };
  let serverApp: AppLoop | undefined;
  let clientApp: AppLoop | undefined;
  const started = performance.now();
  try {
    const [addr] = await server.listen();
    const sid = server.addClient({ keyword: "soak" });
    // Phases: "main" (echo), "server-tail" (server closes gracefully), "client-tail" (client does).
    let phase: "main" | "server-tail" | "client-tail" | "done" = "main";
    let serverClosed = false;
    let clientClosed = false;
    let connected = false;
    let sent = 0;
    serverApp = new AppLoop(server, (r) => {
      if (r.clientsHaveDataToRead.has(sid)) {
        const messages = server.getMessagesFromClient(sid);
        if (phase === "client-tail") {
          for (const m of messages) clientTail.check(m);
        } else {
          const echo: Uint8Array[] = [];
          let closing = false;
          for (const m of messages) {
            if (m.length === 4 && text(m) === "TAIL") {
              // Everything echoed so far goes first, then the tail, then the graceful close.
              for (let i = 0; i < tail; i++) echo.push(soakMessage(i));
              report.serverTail.sent = tail;
              closing = true;
              break;
            }
            toServer.check(m);
            echo.push(m);
          }
          server.sendMessagesToClient(sid, echo);
          if (closing) server.markClientConnectionAsReadyToBeClosed(sid);
        }
      }
      if (r.clientsWithDisconnectedConnection.has(sid)) {
        for (const m of server.getMessagesFromClient(sid)) {
          (phase === "client-tail" ? clientTail : toServer).check(m);
        }
        const err = server.getClientInfo(sid)?.lastError;
        if (err) fail(`server: the ${phase} connection ended with ${err}`);
        serverClosed = true;
      }
    }, 20);
    let cid = client.addClient({ keyword: "soak", connect: targetOf(addr) });
    const pump = (): void => {
      while (phase === "main" && connected && sent < total && sent - echoes.received < window) {
        const n = Math.min(batch, total - sent);
        const messages: Uint8Array[] = new Array(n);
        for (let i = 0; i < n; i++) {
          const m = soakMessage(sent + i);
          messages[i] = m;
          report.bytes += m.length;
        }
        client.sendMessagesToClient(cid, messages);
        sent += n;
      }
    };
    clientApp = new AppLoop(client, (r) => {
      if (r.newlyConnectedExpectedClients.has(cid)) connected = true;
      if (r.clientsHaveDataToRead.has(cid)) {
        for (const m of client.getMessagesFromClient(cid)) (phase === "main" ? echoes : serverTail).check(m);
      }
      if (r.clientsWithDisconnectedConnection.has(cid)) {
        connected = false;
        for (const m of client.getMessagesFromClient(cid)) (phase === "main" ? echoes : serverTail).check(m);
        const err = client.getClientInfo(cid)?.lastError;
        if (err) fail(`client: the ${phase} connection ended with ${err}`);
        clientClosed = true;
      }
      pump();
    }, 20);

    const end = Date.now() + timeout;
    let lastProgress = performance.now();
    const progress = (): void => {
      const now = performance.now();
      if (!options.progress || now - lastProgress < 1000) return;
      lastProgress = now;
      report.messages = echoes.received;
      report.durationMs = now - started;
      report.perSecond = echoes.received / (report.durationMs / 1000);
      report.rssPeak = rss.peak;
      options.progress(report);
    };
    const until = async (condition: () => boolean, label: string): Promise<void> => {
      while (!condition()) {
        if (Date.now() > end) throw new HangError(`Timed out after ${timeout} ms waiting for ${label}`);
        if (clientClosed && phase === "main") {
          throw new Error("the client connection closed during the main phase");
        }
        await delay(10);
        progress();
      }
    };
    await until(() => connected, "the client core to connect");
    pump();
    await until(() => echoes.received + echoes.corrupt >= total || echoes.next >= total, "every echo");
    report.messages = echoes.received;
    report.durationMs = performance.now() - started;
    report.perSecond = echoes.received / (report.durationMs / 1000);
    if (toServer.received !== total || toServer.next !== total) {
      fail(`the server got ${toServer.received} of ${total}`);
    }

    // Server to client: queue a tail, close gracefully; the client must get all of it first.
    phase = "server-tail";
    client.sendMessageToClient(cid, "TAIL");
    await until(() => serverClosed && clientClosed, "the server's graceful close");
    report.serverTail.cleanClose = !client.getClientInfo(cid)?.lastError &&
      !server.getClientInfo(sid)?.lastError;
    if (serverTail.received !== tail || serverTail.next !== tail) {
      fail(`server tail: the client got ${serverTail.received} of ${tail} before the close`);
    }

    // Client to server: reconnect, queue a tail, close gracefully; the server must get all of it.
    phase = "client-tail";
    serverClosed = clientClosed = false;
    client.removeClient(cid);
    cid = client.addClient({ keyword: "soak", connect: targetOf(addr) });
    await until(() => connected, "the client core to reconnect");
    const tailMessages: Uint8Array[] = [];
    for (let i = 0; i < tail; i++) tailMessages.push(soakMessage(i));
    client.sendMessagesToClient(cid, tailMessages);
    client.markClientConnectionAsReadyToBeClosed(cid);
    report.clientTail.sent = tail;
    await until(() => serverClosed && clientClosed, "the client's graceful close");
    report.clientTail.cleanClose = !client.getClientInfo(cid)?.lastError &&
      !server.getClientInfo(sid)?.lastError;
    if (clientTail.received !== tail || clientTail.next !== tail) {
      fail(`client tail: the server got ${clientTail.received} of ${tail} before the close`);
    }
    phase = "done";
    for (
      const [name, stats, clients] of [["server", server.stats(), 1], ["client", client.stats(), 1]] as const
    ) {
      for (const problem of accountingProblems(stats, { connections: 0, clients })) {
        fail(`${name} leak: ${problem}`);
      }
    }
  } catch (err) {
    fail(`soak aborted: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  } finally {
    await clientApp?.stop();
    await serverApp?.stop();
    await client.close();
    await server.close();
    rss.stop();
    crashes.dispose();
  }
  report.toServer = direction(toServer);
  report.echoes = direction(echoes);
  report.serverTail = { ...report.serverTail, ...direction(serverTail) };
  report.clientTail = { ...report.clientTail, ...direction(clientTail) };
  for (const [name, d] of [["client to server", report.toServer], ["echoes", report.echoes]] as const) {
    if (d.lost || d.duplicatedOrLate || d.corrupt) {
      fail(`${name}: ${d.lost} lost, ${d.duplicatedOrLate} duplicated or late, ${d.corrupt} corrupt`);
    }
  }
  report.rssPeak = rss.peak;
  report.crashes = reportCrashes(crashes, [serverApp, clientApp], fail);
  return report;
}
