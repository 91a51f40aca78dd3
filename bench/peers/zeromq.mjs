// B2 peer: zeromq DEALER (client) / ROUTER (server), the same window and ~30-byte messages as the
// other contenders. Node only; run by bench/run.ts after `npm ci --ignore-scripts --prefix bench/peers`.
//   node zeromq.mjs server            -> READY {"port","pid"}; exits when stdin closes
//   node zeromq.mjs client --port P --count N [--warmup N] [--window N]   -> RESULT {"seconds","count"}
import process from "node:process";

// Loaded by name at run time, so `deno check bench/` does not need bench/peers/node_modules.
const load = (name) => import(name);
const zmq = await load("zeromq");

const args = new Map();
for (let i = 3; i < process.argv.length; i += 2) args.set(process.argv[i].slice(2), process.argv[i + 1]);
const num = (name, fallback) => Number(args.get(name) ?? fallback);

if (process.argv[2] === "server") {
  const router = new zmq.Router({ sendHighWaterMark: 0, receiveHighWaterMark: 0 });
  await router.bind("tcp://127.0.0.1:0");
  const port = Number(router.lastEndpoint.split(":").pop());
  process.stdin.resume();
  process.stdin.on("end", () => process.exit(0));
  process.stdout.write(`READY ${JSON.stringify({ port, pid: process.pid })}\n`);
  for await (const [identity, message] of router) await router.send([identity, message]);
} else {
  const count = num("count", 100_000);
  const window = num("window", 16_384);
  const dealer = new zmq.Dealer({ sendHighWaterMark: 0, receiveHighWaterMark: 0 });
  dealer.connect(`tcp://127.0.0.1:${num("port", 0)}`);
  const message = Buffer.alloc(30, "X");
  let answered = 0;
  let wake = () => {};
  let target = 0;
  let reached = () => {};
  (async () => {
    for await (const _ of dealer) {
      answered++;
      if (answered === target) reached();
      wake();
    }
  })();
  const phase = async (total) => {
    const base = answered;
    target = base + total;
    const done = new Promise((resolve) => reached = resolve);
    for (let sent = 0; sent < total; sent++) {
      while (sent - (answered - base) >= window) await new Promise((resolve) => wake = resolve);
      await dealer.send(message);
    }
    await done;
  };
  await phase(num("warmup", Math.min(count, 50_000)));
  const started = performance.now();
  await phase(count);
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(`RESULT ${JSON.stringify({ seconds, count, size: 30 })}\n`);
  process.exit(0);
}
