/**
 * B4b's load client (always run on Node, from the tsc build): opens idle connections to `idle_server.ts`
 * from several `127.0.0.x` source addresses, and measures one extra client's round trips.
 *
 * `client --kind named|raw|bare --port P [--sources 8] [--parallel 256]`, then on stdin:
 * - `open N`: opens connections until N are open, then prints `RESULT {open, seconds}`. Each one
 *   exchanges one message, then idles: a named one announces `c<i>` and waits for `OK`; a raw or bare one
 *   sends the same frame bytes and waits for their echo (so every server has read and written once);
 * - `ping K`: one more connection (named: keyword `lat`) sends K 8-byte messages one at a time, each
 *   after the echo of the last, and prints `RESULT {p50Us, p99Us}`;
 * - end of stdin: closes everything and exits.
 *
 * @module
 */
import { createConnection, type Socket } from "node:net";
import process from "node:process";
import { frame, numArg, parseArgs, report } from "../_child.ts";

const args = parseArgs();
const kind = args.get("kind") ?? "named";
const port = numArg(args, "port", 0);
const sources = numArg(args, "sources", 8);
const parallel = numArg(args, "parallel", 256);
const named = kind === "named";
const sockets: Socket[] = [];
let next = 0;

/**
 * Connects from `127.0.0.<1 + i % sources>` and sends `keyword` as a frame: named clients wait for `OK`,
 * the others for the echo. With `quiet`, sends nothing (the raw and bare latency client).
 */
function open(i: number, keyword: string, quiet = false): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ host: "127.0.0.1", port, localAddress: `127.0.0.${1 + (i % sources)}` });
    s.setNoDelay(true);
    s.once("error", reject);
    s.once("connect", () => {
      if (quiet) return resolve(s);
      const hello = frame(new TextEncoder().encode(keyword));
      // The answer `OK` is one 10-byte frame; an echo is the frame itself.
      const answer = named ? 10 : hello.length;
      let got = 0;
      const onData = (chunk: Uint8Array) => {
        got += chunk.length;
        if (got < answer) return;
        s.off("data", onData);
        resolve(s);
      };
      s.on("data", onData);
      s.write(hello);
    });
  });
}

async function openUntil(total: number): Promise<void> {
  const started = performance.now();
  await Promise.all(Array.from({ length: Math.min(parallel, Math.max(0, total - next)) }, async () => {
    while (next < total) {
      const i = next++;
      const s = await open(i, `c${i}`);
      s.on("error", () => {});
      sockets.push(s);
    }
  }));
  report("RESULT", { open: sockets.length, seconds: (performance.now() - started) / 1000 });
}

async function ping(count: number): Promise<void> {
  const s = await open(next, "lat", !named);
  const payload = new Uint8Array(8).fill(0x58);
  const message = named ? frame(payload) : payload;
  let waiting: (() => void) | undefined;
  let got = 0;
  s.on("data", (chunk: Uint8Array) => {
    got += chunk.length;
    if (got >= message.length && waiting) {
      got -= message.length;
      const w = waiting;
      waiting = undefined;
      w();
    }
  });
  const once = () =>
    new Promise<void>((resolve) => {
      waiting = resolve;
      s.write(message);
    });
  const warmup = Math.min(200, count);
  for (let i = 0; i < warmup; i++) await once();
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    await once();
    times.push((performance.now() - t) * 1000);
  }
  s.destroy();
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
  report("RESULT", { p50Us: at(0.5), p99Us: at(0.99), count });
}

let buffered = "";
let work = Promise.resolve();
process.stdin.setEncoding("utf8");
process.stdin.on("data", (text: string) => {
  buffered += text;
  let nl;
  while ((nl = buffered.indexOf("\n")) >= 0) {
    const [command, n] = buffered.slice(0, nl).trim().split(" ");
    buffered = buffered.slice(nl + 1);
    const value = Number(n);
    work = work.then(() =>
      command === "open" ? openUntil(value) : command === "ping" ? ping(value) : undefined
    )
      .catch((err) => {
        console.error(err);
        process.exit(1);
      });
  }
});
process.stdin.on("end", () => {
  for (const s of sockets) s.destroy();
  process.exit(0);
});
report("READY", { pid: process.pid });
