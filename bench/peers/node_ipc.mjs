// B2 peer: node-ipc over TCP (its default `fast` JSON profile), the same window and ~30-byte
// messages as the other contenders. Node only; run by bench/run.ts.
//   node node_ipc.mjs server           -> READY {"port","pid"}; exits when stdin closes
//   node node_ipc.mjs client --port P --count N [--warmup N] [--window N]  -> RESULT {"seconds","count"}
import { createServer } from "node:net";
import process from "node:process";

// Loaded by name at run time, so `deno check bench/` does not need bench/peers/node_modules.
const load = (name) => import(name);
const { default: ipc } = await load("node-ipc");

const args = new Map();
for (let i = 3; i < process.argv.length; i += 2) args.set(process.argv[i].slice(2), process.argv[i + 1]);
const num = (name, fallback) => Number(args.get(name) ?? fallback);
ipc.config.silent = true;
ipc.config.id = "bench";
ipc.config.maxConnections = 10;

if (process.argv[2] === "server") {
  // serveNet treats port 0 as "use the default 8000", so a free port is found first.
  const probe = createServer();
  await new Promise((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const port = probe.address().port;
  await new Promise((resolve) => probe.close(resolve));
  ipc.serveNet("127.0.0.1", port, () => {
    ipc.server.on("m", (data, socket) => ipc.server.emit(socket, "m", data));
    process.stdout.write(`READY ${JSON.stringify({ port, pid: process.pid })}\n`);
  });
  ipc.server.start();
  process.stdin.resume();
  process.stdin.on("end", () => process.exit(0));
} else {
  const count = num("count", 100_000);
  const window = num("window", 16_384);
  const message = "X".repeat(30);
  await new Promise((resolve) => {
    ipc.connectToNet("bench", "127.0.0.1", num("port", 0), () => ipc.of.bench.on("connect", resolve));
  });
  const server = ipc.of.bench;
  let onAnswer = () => {};
  server.on("m", () => onAnswer());
  const phase = (total) =>
    new Promise((resolve) => {
      let sent = 0;
      let answered = 0;
      const pump = () => {
        while (sent < total && sent - answered < window) {
          server.emit("m", message);
          sent++;
        }
      };
      onAnswer = () => {
        answered++;
        if (answered === total) resolve();
        else if (sent - answered < window / 2) pump();
      };
      pump();
    });
  await phase(num("warmup", Math.min(count, 50_000)));
  const started = performance.now();
  await phase(count);
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(`RESULT ${JSON.stringify({ seconds, count, size: 30 })}\n`);
  process.exit(0);
}
