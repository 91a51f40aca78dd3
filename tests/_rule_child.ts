/**
 * Child process for `tests/regressions.test.ts`: runs one scenario with an access rule that throws,
 * in a process of its own (a throw that escapes the core ends the process, and must not end the test
 * runner), then prints `RESULT <json>` and exits 0.
 *
 * Usage: `<runtime> tests/_rule_child.ts unknown|parked|named`
 *
 * @module
 */
import process from "node:process";
import { encodeFrame, InlineProcessor, IoCore, type IoCoreOptions } from "../mod.ts";
import { exchange, NetPeer, type PeerOutcome } from "./_net_client.ts";

/** The error every throwing rule throws, recognised by identity in the logger's details. */
const ruleError = new Error("rule exploded");

class Echo extends InlineProcessor {
  override onDataReceived(data: Uint8Array): void {
    this.outputMessages.push(data);
  }
}

/** Records whether `logger.error` was given the rule's error (or an error caused by it). */
function errorLogger(): { logged: () => boolean; error(message: string, ...details: unknown[]): void } {
  let logged = false;
  return {
    logged: () => logged,
    error: (_message, ...details) => {
      for (const detail of details) {
        if (detail === ruleError || (detail as { cause?: unknown } | null)?.cause === ruleError) {
          logged = true;
        }
      }
    },
  };
}

function rawCore(logger: ReturnType<typeof errorLogger>, options: Partial<IoCoreOptions>): IoCore {
  return new IoCore({
    listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }],
    rawConnection: () => true,
    unknownClients: "allow",
    unknownClientProcessor: Echo,
    logger,
    ...options,
  });
}

/** The first raw client's rule throws when it connects; the second is admitted and echoed. */
async function unknown(): Promise<Record<string, unknown>> {
  const logger = errorLogger();
  let calls = 0;
  await using core = rawCore(logger, {
    unknownClientsAllow: [{
      test: () => {
        if (calls++ === 0) throw ruleError;
        return true;
      },
    }],
  });
  const [addr] = await core.listen();
  const port = addr!.transport === "tcp" ? addr!.port : 0;
  const first = await exchange(port, []);
  const second = await exchange(port, ["second"], { end: true });
  return { first, second, errorLogged: logger.logged() };
}

/**
 * One connection slot: the second client waits parked, and its rule throws when it is admitted
 * after the first leaves; the third, parked behind it, is still admitted and echoed.
 */
async function parked(): Promise<Record<string, unknown>> {
  const logger = errorLogger();
  let throwFor = -1;
  await using core = rawCore(logger, {
    limits: { maxConnections: 1 },
    unknownClientsAllow: [{
      test: (peer) => {
        if (peer.remoteAddr.transport === "tcp" && peer.remoteAddr.port === throwFor) throw ruleError;
        return true;
      },
    }],
  });
  const [addr] = await core.listen();
  const port = addr!.transport === "tcp" ? addr!.port : 0;
  const first = await NetPeer.connect(port);
  first.write("first");
  await first.until(() => first.text() === "first");
  const second = await NetPeer.connect(port);
  throwFor = second.socket.localPort!;
  const third = await NetPeer.connect(port);
  third.write("third");
  third.end();
  await new Promise((resolve) => setTimeout(resolve, 200)); // A sleep: parked connections show in no count to wait on.
  first.end();
  const [a, b, c] = await Promise.all([first.outcome(), second.outcome(), third.outcome()]);
  return { first: a, second: b, third: c, errorLogged: logger.logged() };
}

/** Connects with a framed keyword and reports the frames received and how the connection ended. */
async function announce(port: number, keyword: string): Promise<{ frames: string[]; outcome: PeerOutcome }> {
  const peer = await NetPeer.connect(port);
  peer.write(encodeFrame(new TextEncoder().encode(keyword)));
  // An admitted client stays connected: leave once OK arrived; a refused one is closed by the core.
  if (await peer.until(() => peer.frames().includes("OK"), 3000)) peer.end();
  const outcome = await peer.outcome();
  return { frames: peer.frames(), outcome: { ...outcome, text: "" } };
}

/** A named client's `allow` rule throws for its first connection; its second is admitted. */
async function named(): Promise<Record<string, unknown>> {
  const logger = errorLogger();
  let calls = 0;
  await using core = new IoCore({
    listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }],
    logger,
  });
  const [addr] = await core.listen();
  const port = addr!.transport === "tcp" ? addr!.port : 0;
  core.addClient({
    keyword: "worker",
    allow: [{
      test: () => {
        if (calls++ === 0) throw ruleError;
        return true;
      },
    }],
  });
  const first = await announce(port, "worker");
  const second = await announce(port, "worker");
  return { first, second, errorLogged: logger.logged() };
}

const scenarios: Record<string, () => Promise<Record<string, unknown>>> = { unknown, parked, named };
const scenario = scenarios[process.argv[process.argv.length - 1]!];
if (!scenario) {
  console.error(`Usage: _rule_child.ts ${Object.keys(scenarios).join("|")}`);
  process.exit(2);
}
// Every wait above is bounded; this only guards against a hang nobody foresaw.
const watchdog = setTimeout(() => {
  console.error("Timed out: the scenario did not finish within 20 s");
  process.exit(3);
}, 20_000);
const result = await scenario();
clearTimeout(watchdog);
console.log(`RESULT ${JSON.stringify(result)}`);
process.exit(0);
