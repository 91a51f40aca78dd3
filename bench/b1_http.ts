/**
 * B1: HTTP/1.1 keep-alive over a raw connection. Three servers on the same runtime, each on CPU 0:
 * asockio's `HttpResponder` as `unknownClientProcessor`, a bare responder on the native socket
 * API, and the runtime's own HTTP server. `wrk` (1 thread, CPU 1) loads them in turn, A B C, B C A, C A B,
 * and the server's CPU time per request comes from `/proc/<pid>/stat`. Without `wrk`, a `--quick`
 * run (or any run with `--no-wrk`) loads them with the built-in client in `_http_load.ts` instead;
 * its figures are smoke only.
 *
 * After the GET cells, an upload row (not with `--tls`): `POST /post` with a 64 MiB body (8 MiB with
 * `--quick`), one upload at a time on one keep-alive connection, from `_http_post_load.ts` on CPU 1,
 * to asockio (its `maxBodyBytes` raised) and to the runtime's own HTTP server, which both read the
 * whole body into one buffer and answer its length. The row's parameters carry `method: "POST"`.
 *
 * With `--tls` the servers speak HTTPS with a throwaway self-signed certificate (made by `openssl`):
 * asockio on the runtime's native transport, asockio on `node:tls` (`transport: "node"`), and the
 * runtime's own HTTPS server. On Deno the first two are the same path since TLS listeners moved to
 * `node:tls`; run it at an older commit to compare with `Deno.listenTls`.
 *
 * @module
 */
import { execFileSync } from "node:child_process";
import { request as httpsRequest } from "node:https";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { addSample, type BenchContext, bytesLabel, rotated, type Row, si } from "./_common.ts";
import { type Child, cpuMicros, startChild, TASKSET } from "./_proc.ts";
import { binary, findWrk, ROOT, type Runtime, workloadCommand } from "./_runtimes.ts";

const SIZES = [1, 100, 1024, 10240, 102400, 1048576, 5242880, 8_760_000, 11_680_000];
const CONCURRENCY = [1, 10, 50, 200, 500, 1000];
const CONTENDERS = [
  { name: "asockio", file: "bench/workloads/http_asockio.ts" },
  { name: "bare", file: "bench/workloads/http_bare.ts" },
  { name: "native", file: "bench/workloads/http_native.ts" },
];
const TLS_CONTENDERS = [
  { name: "asockio", file: "bench/workloads/http_asockio.ts", args: [] as string[] },
  { name: "asockio node:tls", file: "bench/workloads/http_asockio.ts", args: ["--transport", "node"] },
  { name: "native", file: "bench/workloads/http_native.ts", args: [] as string[] },
];
const NOFILE = 65536;

/** A self-signed certificate for 127.0.0.1, made by `openssl` in a fresh temp dir, as file paths. */
function benchCertificate(): { cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), "asockio-b1-tls-"));
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  execFileSync("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=localhost",
    "-addext",
    "subjectAltName=IP:127.0.0.1",
    "-keyout",
    key,
    "-out",
    cert,
  ], { stdio: "ignore" });
  return { cert, key };
}

/** The cells to run: quick, the two sweeps (every size at 200, every concurrency at 100 B), or all. */
function matrix(ctx: BenchContext): Array<{ size: number; concurrency: number }> {
  if (ctx.quick) {
    return [
      { size: 100, concurrency: 200 },
      { size: 10240, concurrency: 200 },
      { size: 1048576, concurrency: 200 },
    ];
  }
  if (ctx.fullMatrix) {
    return SIZES.flatMap((size) => CONCURRENCY.map((concurrency) => ({ size, concurrency })));
  }
  return [
    ...SIZES.map((size) => ({ size, concurrency: 200 })),
    ...CONCURRENCY.filter((c) => c !== 200).map((concurrency) => ({ size: 100, concurrency })),
  ];
}

/** What one load run reports: `wrk_report.lua`'s fields, the same from the built-in client. */
export interface LoadResult {
  requests: number;
  bytes: number;
  durationUs: number;
  connect: number;
  read: number;
  write: number;
  status: number;
  timeout: number;
  /** The built-in client's first wrong answer (it stops there). */
  wrong?: string;
}

/** The HTTP load generator (B1, B5): `wrk` at `path`, or the built-in client (`_http_load.ts` on Deno). */
export type LoadGenerator = { kind: "wrk"; path: string } | { kind: "builtin" };

/** The report's note when the built-in client runs, with why; pushed once per run and benchmark. */
function builtinNote(bench: string, reason: string): string {
  return `${bench} load generator: the built-in client (\`bench/_http_load.ts\`, one JavaScript thread on Deno), ` +
    `not wrk (${reason}). Its ${bench} figures are smoke only, not comparable with wrk runs.`;
}

/**
 * `wrk` where it is installed. Without it, a `--quick` run falls back to the built-in client and a
 * full run fails with the install hint. `--no-wrk` forces the built-in client. `bench` names the
 * benchmark in the report's notes.
 */
export function loadGenerator(ctx: BenchContext, bench = "B1"): LoadGenerator {
  if (!ctx.noWrk) {
    const path = findWrk();
    if (path) return { kind: "wrk", path };
    if (!ctx.quick) {
      const message = "wrk is not installed: install it with `apt-get install -y wrk` (Debian/Ubuntu)";
      ctx.notes.push(`${bench} skipped: ${message}`);
      throw new Error(message);
    }
  }
  const note = builtinNote(bench, ctx.noWrk ? "--no-wrk" : "wrk is not installed");
  if (!ctx.notes.includes(note)) ctx.notes.push(note);
  return { kind: "builtin" };
}

/**
 * Loads `http://127.0.0.1:<port>/<size>` (`https` with `tls`) from CPU 1 with `concurrency` connections
 * for `seconds`.
 */
export async function load(
  generator: LoadGenerator,
  port: number,
  size: number,
  concurrency: number,
  seconds: number,
  tls = false,
): Promise<LoadResult> {
  const argv = generator.kind === "wrk"
    ? [
      generator.path,
      "-t1",
      `-c${concurrency}`,
      `-d${seconds}s`,
      "--timeout",
      "10s",
      "-s",
      join(ROOT, "bench", "wrk_report.lua"),
      `${tls ? "https" : "http"}://127.0.0.1:${port}/${size}`,
    ]
    : [
      binary("deno"),
      "run",
      "-A",
      join(ROOT, "bench", "_http_load.ts"),
      "--port",
      `${port}`,
      "--size",
      `${size}`,
      "--connections",
      `${concurrency}`,
      "--seconds",
      `${seconds}`,
      ...(tls ? ["--tls"] : []),
    ];
  const label = `${generator.kind === "wrk" ? "wrk" : "built-in load client"} -c${concurrency} /${size}`;
  const child = startChild(argv, { label, cpu: 1, nofile: NOFILE });
  try {
    const kind = generator.kind === "wrk" ? "WRK" : "RESULT";
    const result = (await child.next(kind, seconds * 1000 + 60_000)) as unknown as LoadResult;
    if (result.wrong) throw new Error(`${label}: wrong answer: ${result.wrong}`);
    return result;
  } finally {
    await child.stop(2000);
  }
}

/** What the upload client's probe (another connection's GETs during the uploads) measured, in µs. */
interface UploadProbe {
  probes?: number;
  probeP50Us?: number;
  probeP99Us?: number;
  probeMaxUs?: number;
}

/** The upload row's body size; `--quick` sends less. */
const UPLOAD_BYTES = 64 * 1024 * 1024;
/** The contenders of the upload row: the bare responder reads no bodies. */
const UPLOAD_CONTENDERS = ["asockio", "native"];

/** Uploads `size`-byte bodies to `port` one after another from CPU 1 for `seconds` (at least 2). */
async function uploadLoad(
  port: number,
  size: number,
  seconds: number,
  probeMs: number,
): Promise<LoadResult & UploadProbe> {
  const client = (args: string[]) => [
    binary("deno"),
    "run",
    "-A",
    join(ROOT, "bench", "_http_post_load.ts"),
    ...["--port", `${port}`, "--seconds", `${seconds}`, ...args],
  ];
  const label = `upload client POST ${bytesLabel(size)}`;
  const child = startChild(client(["--size", `${size}`, "--min", "2"]), { label, cpu: 1, nofile: NOFILE });
  // The probe in a process of its own, so that the upload client's writes cannot delay its GETs.
  const probe = probeMs > 0
    ? startChild(client(["--probe-ms", `${probeMs}`]), { label: "upload probe", cpu: 1, nofile: NOFILE })
    : undefined;
  try {
    const result = (await child.next("RESULT", seconds * 1000 + 120_000)) as unknown as
      & LoadResult
      & UploadProbe;
    if (result.wrong) throw new Error(`${label}: wrong answer: ${result.wrong}`);
    if (probe === undefined) return result;
    const probed = (await probe.next("RESULT", 60_000)) as unknown as UploadProbe & { wrong?: string };
    if (probed.wrong) throw new Error(`upload probe: wrong answer: ${probed.wrong}`);
    const { probes, probeP50Us, probeP99Us, probeMaxUs } = probed;
    return { ...result, probes, probeP50Us, probeP99Us, probeMaxUs };
  } finally {
    await child.stop(2000);
    await probe?.stop(2000);
  }
}

/** One empty row per contender for a cell at `params`, added to the run's rows, by contender name. */
function cellRows(
  ctx: BenchContext,
  runtime: Runtime,
  contenders: ReadonlyArray<{ name: string }>,
  params: Row["params"],
): Map<string, Row> {
  const rows = new Map<string, Row>();
  for (const { name } of contenders) {
    const row: Row = { bench: "b1", runtime, contender: name, params, metrics: {}, samples: {} };
    rows.set(name, row);
    ctx.rows.push(row);
  }
  return rows;
}

/** B1's upload row: asockio and the runtime's own server, `ctx.reps` times each, interleaved. */
async function runUploads(
  ctx: BenchContext,
  runtime: Runtime,
  servers: ReadonlyArray<{ name: string; port: number; pid: number }>,
): Promise<void> {
  const size = ctx.quick ? 8 * 1024 * 1024 : UPLOAD_BYTES;
  const seconds = ctx.quick ? 1 : 3;
  const contenders = servers.filter((s) => UPLOAD_CONTENDERS.includes(s.name));
  const probeMs = ctx.uploadProbeMs ?? 0;
  const params = { size, concurrency: 1, method: "POST", loadGenerator: "upload client", probeMs };
  const rows = cellRows(ctx, runtime, contenders, params);
  for (let rep = 1; rep <= ctx.reps; rep++) {
    const line: string[] = [];
    for (const s of rotated(contenders, rep)) {
      const row = rows.get(s.name)!;
      if (row.error) continue;
      const label = `b1 ${runtime} POST ${bytesLabel(size)} ${s.name}`;
      try {
        const cpuBefore = cpuMicros(s.pid);
        const r = await uploadLoad(s.port, size, seconds, probeMs);
        const cpu = cpuMicros(s.pid) - cpuBefore;
        const duration = r.durationUs / 1e6;
        addSample(row, "requestsPerSecond", r.requests / duration);
        addSample(row, "mibPerSecond", r.bytes / 2 ** 20 / duration);
        addSample(row, "cpuUsPerRequest", cpu / r.requests);
        addSample(row, "errors", 0);
        let probe = "";
        if (r.probes) {
          addSample(row, "probeP50Ms", r.probeP50Us! / 1000);
          addSample(row, "probeP99Ms", r.probeP99Us! / 1000);
          addSample(row, "probeMaxMs", r.probeMaxUs! / 1000);
          probe = ` (probe p50 ${(r.probeP50Us! / 1000).toFixed(1)} max ${
            (r.probeMaxUs! / 1000).toFixed(0)
          } ms)`;
        }
        line.push(`${s.name} ${(r.bytes / 2 ** 20 / duration).toFixed(0)} MiB/s${probe}`);
      } catch (err) {
        row.error = (err as Error).message.split("\n")[0];
        ctx.fail(label, err);
      }
    }
    ctx.progress(`b1 ${runtime} POST ${bytesLabel(size)} rep ${rep}/${ctx.reps}: ${line.join(", ")}`);
  }
}

/** `GET https://127.0.0.1:<port>/<path>` trusting any certificate (the bench's own, self-signed). */
function httpsGet(port: number, path: string): Promise<{ status: number; body: Uint8Array }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: "127.0.0.1", port, path, rejectUnauthorized: false }, (res) => {
      const chunks: Uint8Array[] = [];
      res.on("data", (chunk: Uint8Array) => chunks.push(chunk));
      res.on("end", () => {
        const body = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
        let at = 0;
        for (const c of chunks) {
          body.set(c, at);
          at += c.length;
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/**
 * Checks that a server answers `/<size>` with exactly `size` bytes of `X`, keep-alive included (over
 * HTTPS with `tls`).
 */
export async function verify(port: number, size: number, tls = false): Promise<void> {
  for (let i = 0; i < 2; i++) {
    let status: number;
    let body: Uint8Array;
    if (tls) ({ status, body } = await httpsGet(port, `/${size}`));
    else {
      const response = await fetch(`http://127.0.0.1:${port}/${size}`);
      status = response.status;
      body = new Uint8Array(await response.arrayBuffer());
    }
    if (status !== 200) throw new Error(`GET /${size} answered ${status}`);
    if (body.length !== size) throw new Error(`GET /${size} answered ${body.length} bytes`);
    for (let j = 0; j < body.length; j += 4093) {
      if (body[j] !== 0x58) throw new Error(`GET /${size} answered a byte other than X at ${j}`);
    }
  }
}

/** Runs B1 on one runtime. */
export async function runB1(ctx: BenchContext, runtime: Runtime): Promise<void> {
  const generator = loadGenerator(ctx);
  const pinNote = "taskset not found: servers and the load generator were not pinned to separate CPUs";
  if (!TASKSET && !ctx.notes.includes(pinNote)) ctx.notes.push(pinNote);
  // wrk takes whole seconds. Large bodies get longer runs: at 200 connections one 11 MB response
  // each is over a second of transfer, and wrk counts completed requests only.
  const secondsFor = (size: number) => (ctx.quick || size < 1048576 ? 1 : 3);
  const cells = ctx.b1Rows === "upload" ? [] : matrix(ctx);
  const tls = ctx.tls;
  const tlsArgs = tls ? Object.entries(benchCertificate()).flatMap(([k, path]) => [`--${k}`, path]) : [];
  const contenders = tls ? TLS_CONTENDERS : CONTENDERS.map((c) => ({ ...c, args: [] as string[] }));
  const servers: Array<{ name: string; child: Child; port: number; pid: number }> = [];
  try {
    for (const c of contenders) {
      const child = startChild(workloadCommand(runtime, c.file, [...c.args, ...tlsArgs]), {
        label: `b1 ${runtime} ${c.name} server`,
        cpu: 0,
        nofile: NOFILE,
      });
      const ready = await child.next("READY", 60_000);
      servers.push({ name: c.name, child, port: Number(ready.port), pid: Number(ready.pid) });
    }
    const sizes = [...new Set(cells.map((c) => c.size))];
    for (const s of servers) {
      for (const size of sizes) {
        try {
          await verify(s.port, size, tls);
        } catch (err) {
          ctx.fail(`b1 ${runtime} ${s.name} ${bytesLabel(size)} answer check`, err);
        }
      }
      // Warm-up: JIT and buffers, outside the measurements.
      await load(generator, s.port, 100, 50, 1, tls);
    }
    ctx.progress(`b1 ${runtime}: ${servers.length} servers answer every size; ${cells.length} cells`);
    for (const cell of cells) {
      const params = { ...cell, loadGenerator: generator.kind, ...(tls ? { tls: "tls" } : {}) };
      const rows = cellRows(ctx, runtime, servers, params);
      for (let rep = 1; rep <= ctx.reps; rep++) {
        const line: string[] = [];
        for (const s of rotated(servers, rep)) {
          const row = rows.get(s.name)!;
          if (row.error) continue;
          const label = `b1 ${runtime} ${bytesLabel(cell.size)} c${cell.concurrency} ${s.name}`;
          try {
            const cpuBefore = cpuMicros(s.pid);
            const r = await load(generator, s.port, cell.size, cell.concurrency, secondsFor(cell.size), tls);
            const cpu = cpuMicros(s.pid) - cpuBefore;
            const errors = r.connect + r.read + r.write + r.status;
            if (r.bytes === 0) {
              throw new Error(`${label}: no byte arrived in ${r.durationUs / 1e6} s (${errors} errors)`);
            }
            if (r.status > 0) throw new Error(`${label}: ${r.status} responses were not 2xx`);
            const duration = r.durationUs / 1e6;
            // Large bodies: count responses by bytes received, partial ones included. wrk counts only
            // completed requests, and at 200 connections few 11 MB responses complete in a few seconds,
            // which would charge the CPU of every partial response to the few that completed.
            const responses = cell.size >= 1048576 ? r.bytes / cell.size : r.requests;
            addSample(row, "requestsPerSecond", responses / duration);
            addSample(row, "mibPerSecond", (responses * cell.size) / 2 ** 20 / duration);
            addSample(row, "cpuUsPerRequest", cpu / responses);
            addSample(row, "errors", errors);
            addSample(row, "timeouts", r.timeout);
            line.push(`${s.name} ${si(responses / duration)} req/s ${(cpu / responses).toFixed(1)} µs`);
          } catch (err) {
            row.error = (err as Error).message.split("\n")[0];
            ctx.fail(label, err);
          }
        }
        ctx.progress(
          `b1 ${runtime} ${bytesLabel(cell.size)} c${cell.concurrency} rep ${rep}/${ctx.reps}: ${
            line.join(", ")
          }`,
        );
      }
    }
    if (!tls && ctx.b1Rows !== "get") await runUploads(ctx, runtime, servers);
  } finally {
    for (const s of servers) {
      const code = await s.child.stop(3000);
      if (code !== 0) {
        ctx.fail(`b1 ${runtime} ${s.name} server`, new Error(`exited with code ${code}\n${s.child.tail()}`));
      }
    }
  }
}
