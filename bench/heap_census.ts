/**
 * Heap census of B4b's idle server: what each idle connection adds to the JS heap, by constructor. It
 * starts `workloads/idle_server.ts` on Deno or Bun, has it write a heap snapshot (`snapshot <path>` on
 * its stdin, see `_child.ts`), opens N idle connections as B4b's client does (each exchanges one
 * message), has it write a second snapshot, and prints the growth ÷ N by constructor: the self size of
 * V8's objects (Deno) or JSC's cells (Bun). `--against FILE` subtracts another run's table (say the
 * bare server's), so what is left is what asockio adds.
 *
 * ```sh
 * deno run -A bench/heap_census.ts --runtime bun --kind bare --clients 4000 --out /tmp/bare.json
 * deno run -A bench/heap_census.ts --runtime bun --kind raw --clients 4000 --against /tmp/bare.json
 * ```
 *
 * @module
 */
import { readFileSync, writeFileSync } from "node:fs";
import { createConnection, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { frame, numArg, parseArgs } from "./_child.ts";
import { type Child, startChild } from "./_proc.ts";
import { workloadCommand } from "./_runtimes.ts";

/** Per constructor: instances and bytes per connection. */
type Table = Map<string, [count: number, bytes: number]>;

const args = parseArgs(Deno.args);
const runtime = args.get("runtime") ?? "deno";
const kind = args.get("kind") ?? "raw";
const clients = numArg(args, "clients", 4000);
if (runtime !== "deno" && runtime !== "bun") {
  throw new TypeError("Cannot run the census: --runtime is deno or bun");
}

/** Sums a snapshot's nodes by constructor (V8: objects by name, the rest by type; JSC: by class). */
function tally(path: string): Table {
  const j = JSON.parse(readFileSync(path, "utf8"));
  const out: Table = new Map();
  const add = (key: string, bytes: number) => {
    const entry = out.get(key) ?? [0, 0];
    entry[0]++;
    entry[1] += bytes;
    out.set(key, entry);
  };
  if (j.snapshot) {
    const fields: string[] = j.snapshot.meta.node_fields;
    const types: string[] = j.snapshot.meta.node_types[0];
    const [t, n, s] = ["type", "name", "self_size"].map((f) => fields.indexOf(f));
    for (let i = 0; i < j.nodes.length; i += fields.length) {
      const type = types[j.nodes[i + t!]]!;
      const name = type === "object" ? String(j.strings[j.nodes[i + n!]]) : `(${type})`;
      add(name.replace(/ @\d+$/, ""), j.nodes[i + s!]);
    }
  } else {
    for (let i = 0; i < j.nodes.length; i += 4) add(j.nodeClassNames[j.nodes[i + 2]], j.nodes[i + 1]);
  }
  return out;
}

function openOne(port: number, i: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ host: "127.0.0.1", port, localAddress: `127.0.0.${1 + (i % 8)}` });
    s.once("error", reject);
    s.once("connect", () => {
      const hello = frame(new TextEncoder().encode(`c${i}`));
      const answer = kind === "named" ? 10 : hello.length; // `OK` as a frame, or the echo
      let got = 0;
      const onData = (chunk: Uint8Array) => {
        if ((got += chunk.length) < answer) return;
        s.off("data", onData);
        resolve(s);
      };
      s.on("data", onData);
      s.write(hello);
    });
  });
}

async function snapshot(server: Child, path: string): Promise<Table> {
  server.send(`snapshot ${path}`);
  await server.next("STATS", 120_000);
  return tally(path);
}

const command = workloadCommand(runtime, "bench/workloads/idle_server.ts", [
  "server",
  "--kind",
  kind,
  "--clients",
  `${clients}`,
], true);
const server = startChild(command, { label: `census ${runtime} ${kind}`, nofile: 65536 });
const sockets: Socket[] = [];
try {
  const ready = await server.next("READY", 60_000);
  const dir = tmpdir();
  const before = await snapshot(server, join(dir, `census-${runtime}-${kind}-base.heapsnapshot`));
  let next = 0;
  await Promise.all(Array.from({ length: 128 }, async () => {
    while (next < clients) {
      const s = await openOne(Number(ready.port), next++);
      s.on("error", () => {});
      sockets.push(s);
    }
  }));
  for (let i = 0; i < 100; i++) {
    server.send("stats");
    if (Number((await server.next("STATS", 60_000)).connected) >= clients) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const after = await snapshot(server, join(dir, `census-${runtime}-${kind}-full.heapsnapshot`));
  const rows: [string, number, number][] = [];
  for (const [key, [count, bytes]] of after) {
    const [count0, bytes0] = before.get(key) ?? [0, 0];
    rows.push([key, (count - count0) / clients, (bytes - bytes0) / clients]);
  }
  const out = args.get("out");
  if (out) writeFileSync(out, JSON.stringify(rows));
  const against = args.get("against");
  const base = new Map<string, [string, number, number]>(
    against
      ? (JSON.parse(readFileSync(against, "utf8")) as [string, number, number][]).map((r) => [r[0], r])
      : [],
  );
  const shown = new Map(rows.map((r) => [r[0], r]));
  for (const key of base.keys()) if (!shown.has(key)) shown.set(key, [key, 0, 0]);
  const diff = [...shown.values()].map(([key, c, b]) => {
    const [, c0, b0] = base.get(key) ?? [key, 0, 0];
    return [key, c - c0, b - b0] as const;
  }).filter((r) => Math.abs(r[2]) >= 4).sort((a, b) => b[2] - a[2]);
  const total = diff.reduce((sum, r) => sum + r[2], 0);
  console.log(
    `${runtime} ${kind}, ${clients} connections: ${total.toFixed(0)} B per connection${
      against ? " above " + against : ""
    }`,
  );
  for (const [key, c, b] of diff) {
    console.log(`${b.toFixed(1).padStart(8)} B ${c.toFixed(2).padStart(6)} ×  ${key}`);
  }
} finally {
  for (const s of sockets) s.destroy();
  await server.stop(10_000);
}
