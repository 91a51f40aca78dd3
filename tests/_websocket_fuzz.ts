/**
 * A live fuzz of a core's `websocket` listener against an independent decoder, `ws`'s own `Receiver`:
 * each round connects over a real socket, is admitted by keyword, reads messages the core sends (checked with
 * `ws`'s client-side parser), then sends a seeded stream of valid, invalid and mutated client frames. `ws`'s
 * server-side parser, fed the same bytes, says what must happen: the messages the application gets, the
 * pongs, and the close code (1002, 1007, 1009, or the echo of the peer's close).
 *
 * Used by `tests/websocket_fuzz.test.ts` (bounded) and `scripts/fuzz.ts --websocket` (longer runs).
 *
 * @module
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { ClientId, IoCore } from "../mod.ts";
import { Rng } from "./_stream_check.ts";
import { startCore } from "./_core_fixture.ts";
import { clientFrame, closePayload, concatBytes, WsPeer } from "./_websocket_peer.ts";

/** What `ws` made of a byte stream. */
export interface WsModel {
  /** Each complete data message's payload (text as its UTF-8 bytes). */
  messages: Uint8Array[];
  pings: Uint8Array[];
  pongs: Uint8Array[];
  /** `open`: no close frame and no error; `close`: the peer's close frame; `error`: a protocol error. */
  end: "open" | "close" | "error";
  /** The close code `ws` would send for an error, or the peer's close code. */
  code?: number;
}

type WsReceiver = {
  on(event: string, listener: (...args: unknown[]) => void): void;
  write(chunk: Uint8Array): boolean;
};

const toBytes = (data: unknown): Uint8Array =>
  data instanceof Uint8Array ? new Uint8Array(data) : new Uint8Array(data as ArrayBuffer);

/**
 * The frame parser `ws` itself uses, loaded from its file: Bun answers `import "ws"` with its own
 * implementation, which has no `Receiver`, and `ws`'s exports map does not expose `lib/`.
 */
const Receiver: new (options: object) => WsReceiver = (() => {
  const require = createRequire(import.meta.url);
  return require(join(dirname(require.resolve("ws/package.json")), "lib", "receiver.js"));
})();

/** Runs `bytes` through `ws`'s `Receiver` (server side unless `isServer` is false). */
export async function wsDecode(bytes: Uint8Array, maxPayload: number, isServer = true): Promise<WsModel> {
  const model: WsModel = { messages: [], pings: [], pongs: [], end: "open" };
  const receiver = new Receiver({
    isServer,
    maxPayload,
    binaryType: "nodebuffer",
  });
  receiver.on("message", (data) => model.messages.push(toBytes(data)));
  receiver.on("ping", (data) => model.pings.push(toBytes(data)));
  receiver.on("pong", (data) => model.pongs.push(toBytes(data)));
  receiver.on("conclude", (code) => {
    model.end = "close";
    model.code = code as number;
  });
  receiver.on("error", (err) => {
    model.end = "error";
    model.code = (err as Record<symbol, number>)[
      Object.getOwnPropertySymbols(err).find((s) => s.description === "status-code")!
    ];
  });
  // `ws` unmasks in place: it gets its own copy.
  receiver.write(bytes.slice());
  // Errors come through the stream's callback, a tick later.
  await new Promise((resolve) => setTimeout(resolve, 0));
  return model;
}

function text(rng: Rng, max: number): Uint8Array {
  const chars = ["a", "z", " ", "é", "€", "😀", "\u0000"];
  let s = "";
  for (let n = rng.int(max); n > 0; n--) s += rng.pick(chars);
  return new TextEncoder().encode(s);
}

/** A payload size: mostly small, sometimes about `max` (just under, at, or just over it). */
const size = (rng: Rng, max: number) =>
  rng.chance(0.15) ? Math.max(0, Math.floor(max) - 2 + rng.int(5)) : rng.int(300);

/** A masking key: random, sometimes zero. */
const mask = (rng: Rng) => rng.chance(0.1) ? [0, 0, 0, 0] : Array.from(rng.bytes(4));

/** One stream of client frames, mostly valid, some broken on purpose, sometimes with random bytes changed. */
export function fuzzFrames(rng: Rng, maxMessageBytes: number): Uint8Array {
  const frames: Uint8Array[] = [];
  for (let n = 1 + rng.int(6); n > 0; n--) {
    const m = mask(rng);
    const k = rng.int(20);
    if (k < 5) frames.push(clientFrame(1, text(rng, 40), { mask: m, longLength: rng.chance(0.1) }));
    else if (k < 9) frames.push(clientFrame(2, rng.bytes(size(rng, maxMessageBytes)), { mask: m }));
    else if (k < 12) {
      // A fragmented message with control frames between the fragments.
      const opcode = rng.pick([1, 2]);
      const parts = 2 + rng.int(3);
      for (let i = 0; i < parts; i++) {
        const body = rng.chance(0.2)
          ? new Uint8Array(0) // empty fragments: the parser's reserved prefix once doubled after one
          : opcode === 1
          ? text(rng, 20)
          : rng.bytes(size(rng, maxMessageBytes / 2));
        frames.push(clientFrame(i === 0 ? opcode : 0, body, { fin: i === parts - 1, mask: mask(rng) }));
        if (rng.chance(0.3)) frames.push(clientFrame(9, rng.bytes(rng.int(20)), { mask: mask(rng) }));
      }
    } else if (k < 14) frames.push(clientFrame(9, rng.bytes(rng.int(126)), { mask: m }));
    else if (k < 15) frames.push(clientFrame(10, rng.bytes(rng.int(10)), { mask: m }));
    else if (k < 16) {
      const code = rng.pick([1000, 1001, 1003, 1004, 1005, 1011, 2999, 3000, 4999, 5000]);
      frames.push(
        clientFrame(8, rng.chance(0.2) ? new Uint8Array(0) : closePayload(code, "bye"), { mask: m }),
      );
    } else if (k < 17) frames.push(clientFrame(1, new Uint8Array([0x61, 0xc3, 0x28]), { mask: m }));
    else if (k < 18) frames.push(clientFrame(2, rng.bytes(8), { mask: m, masked: false }));
    else if (k < 19) frames.push(clientFrame(rng.pick([3, 7, 11, 15]), rng.bytes(4), { mask: m }));
    else frames.push(clientFrame(2, rng.bytes(4), { mask: m, rsv: 1 + rng.int(7) }));
  }
  const bytes = concatBytes(...frames);
  if (rng.chance(0.3)) {
    for (let k = 1 + rng.int(3); k > 0; k--) bytes[rng.int(bytes.length)] = rng.int(256);
  }
  return bytes;
}

/**
 * Waits for `condition`, which may depend on the core as well as on the socket: `peer.until` wakes on
 * socket events only, so this re-checks every few milliseconds.
 */
async function poll(peer: WsPeer, condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await peer.until(condition, 5); // reads what arrived; returns the frames, not whether it held
    if (condition()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** One round: how `ws` read the fuzzed stream (`open`, `close`, `error 1002`, ...) and what differed. */
export interface FuzzRoundResult {
  outcome: string;
  /** What differed from `ws`'s reading, or `undefined`. */
  problem?: string;
}

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const same = (a: Uint8Array[], b: Uint8Array[]) =>
  a.length === b.length && a.every((x, i) => hex(x) === hex(b[i]!));

/**
 * One round against `core` (a `websocket` listener at `/ws` on `port`, `limits.maxMessageBytes` =
 * `maxMessageBytes`): admitted as `keyword` (registered by the caller as `id`), reads the messages the core sends,
 * then sends a fuzzed stream.
 */
export async function fuzzRound(
  core: IoCore,
  port: number,
  keyword: string,
  id: ClientId,
  rng: Rng,
  maxMessageBytes: number,
): Promise<FuzzRoundResult> {
  const peer = await WsPeer.open(port, "/ws");
  try {
    peer.send(1, keyword, { mask: mask(rng) });
    await peer.until((frames) => frames.length >= 1, 5000);
    if (peer.texts()[0] !== "OK") {
      return { outcome: "refused", problem: `not admitted: ${JSON.stringify(peer.texts())}` };
    }
    const admitted = peer.net.bytes().length;
    // Messages from the core, each length form: `ws`'s client-side parser must read them back exactly.
    const sent = Array.from(
      { length: rng.int(4) },
      () =>
        rng.bytes(Math.min(maxMessageBytes, rng.pick([0, 1, 125, 126, 127, 65535, 65536, rng.int(70_000)]))),
    );
    if (sent.length > 0) core.sendMessagesToClient(id, sent);
    await peer.until((frames) => frames.length >= 1 + sent.length, 5000);
    const fromCore = await wsDecode(peer.net.bytes().subarray(admitted), 0, false);
    if (!same(fromCore.messages, sent) || fromCore.end !== "open") {
      const problem =
        `ws read ${fromCore.messages.length}/${sent.length} of the core's messages (${fromCore.end})`;
      return { outcome: "open", problem };
    }
    const mark = peer.net.bytes().length;
    const before = peer.frames.length;

    const bytes = fuzzFrames(rng, maxMessageBytes);
    const model = await wsDecode(bytes, maxMessageBytes);
    for (let at = 0; at < bytes.length;) {
      const n = 1 + rng.int(bytes.length - at);
      peer.net.write(bytes.slice(at, at + n));
      at += n;
    }
    // What the application has read so far: getMessagesFromClient takes what the core delivered.
    const delivered: Uint8Array[] = [];
    const got = () => {
      delivered.push(...core.getMessagesFromClient(id));
      return delivered.length;
    };
    const pongs = () => peer.frames.slice(before).filter((f) => f.opcode === 10).length;
    if (model.end === "open") {
      await poll(peer, () => got() >= model.messages.length && pongs() >= model.pings.length, 5000);
    } else await peer.closed(5000);
    await poll(peer, () => got() >= model.messages.length, 2000);
    const fromServer = await wsDecode(peer.net.bytes().subarray(mark), 0, false);
    const problems: string[] = [];
    if (!same(delivered, model.messages)) {
      problems.push(`delivered ${delivered.length} messages, ws read ${model.messages.length}`);
    }
    if (!same(fromServer.pongs, model.pings)) {
      problems.push(`${fromServer.pongs.length} pongs for ${model.pings.length} pings`);
    }
    if (fromServer.messages.length > 0) problems.push("the core sent data frames it was not asked to");
    if (model.end === "open" && fromServer.end !== "open") problems.push(`closed with ${fromServer.code}`);
    if (model.end === "error" && (fromServer.end !== "close" || fromServer.code !== model.code)) {
      problems.push(`ws closes with ${model.code}, the core ${fromServer.end} ${fromServer.code}`);
    }
    if (model.end === "close" && fromServer.end !== "close") problems.push("the peer's close was not echoed");
    const outcome = model.end === "error" ? `error ${model.code}` : model.end;
    if (problems.length === 0) return { outcome };
    return { outcome, problem: `${problems.join("; ")} (stream ${hex(bytes).slice(0, 400)})` };
  } finally {
    peer.net.socket.destroy();
  }
}

/** What {@linkcode runWebSocketFuzz} found. */
export interface WebSocketFuzzReport {
  rounds: number;
  seed: number;
  /** How `ws` read the fuzzed streams: `open`, `close`, `error 1002`, ... with their counts. */
  outcomes: Record<string, number>;
  /** One line per round that differed (at most `maxFailures`). */
  failures: string[];
  durationMs: number;
}

/**
 * `rounds` rounds of {@linkcode fuzzRound}, one connection each, against a fresh core with a `websocket`
 * listener and `limits.maxMessageBytes` = `maxMessageBytes`. Round `r` of `seed` always sends the same bytes.
 */
export async function runWebSocketFuzz(options: {
  rounds: number;
  seed: number;
  maxMessageBytes?: number;
  maxFailures?: number;
  progress?: (done: number) => void;
}): Promise<WebSocketFuzzReport> {
  const max = options.maxMessageBytes ?? 70_000;
  const started = performance.now();
  const report: WebSocketFuzzReport = {
    rounds: 0,
    seed: options.seed,
    outcomes: {},
    failures: [],
    durationMs: 0,
  };
  await using fx = await startCore({
    listeners: [{ transport: "tcp", port: 0, websocket: { path: "/ws", pingIntervalMs: 0 } }],
    limits: { maxMessageBytes: max },
  });
  for (
    let round = 0;
    round < options.rounds && report.failures.length < (options.maxFailures ?? 5);
    round++
  ) {
    const keyword = `fuzz-${round}`;
    const id = fx.core.addClient({ keyword });
    const { outcome, problem } = await fuzzRound(
      fx.core,
      fx.port(),
      keyword,
      id,
      new Rng(options.seed, round),
      max,
    );
    report.outcomes[outcome] = (report.outcomes[outcome] ?? 0) + 1;
    fx.core.removeClient(id);
    if (problem) report.failures.push(`seed ${options.seed} round ${round}: ${problem}`);
    report.rounds++;
    options.progress?.(report.rounds);
  }
  report.durationMs = performance.now() - started;
  return report;
}
