/**
 * B1's upload client: on one keep-alive HTTP/1.1 connection on `node:net`, it sends
 * `POST /post` with a `Content-Length` body of `--size` bytes, waits for the answer (which must be
 * 200 with the body length as its body), and sends the next, until `--seconds` have passed and at
 * least `--min` uploads were answered. `b1_http.ts` runs it on Deno as a child process, pinned to
 * CPU 1 like `wrk`. With `--probe-ms N` (N > 0) it is instead the probe that runs beside the
 * uploads, in its own process (so the upload client's own writes cannot delay it): on one
 * connection it sends `GET /1` whenever N ms have passed since the last answer, for `--seconds`.
 *
 * ```sh
 * deno run -A bench/_http_post_load.ts --port 8080 --size 67108864 --seconds 3 --min 2
 * deno run -A bench/_http_post_load.ts --port 8080 --seconds 3 --probe-ms 5
 * ```
 *
 * Prints `RESULT {json}` with `requests` (uploads answered), `bytes` (body bytes sent in them) and
 * `durationUs` (the time they took), plus `wrong` (the first wrong answer) when there was one; the
 * probe prints `probes` (GETs answered) and `probeP50Us`, `probeP99Us`, `probeMaxUs` (their latency).
 *
 * @module
 */
import { connect } from "node:net";
import process from "node:process";
import { numArg, parseArgs, report } from "./_child.ts";

const args = parseArgs();
const port = numArg(args, "port", 0);
const size = numArg(args, "size", 64 * 1024 * 1024);
const seconds = numArg(args, "seconds", 3);
const min = numArg(args, "min", 2);
const probeMs = numArg(args, "probe-ms", 0);
if (!(port > 0) || !(size >= 0) || !(seconds > 0) || !(min >= 1) || !(probeMs >= 0)) {
  throw new RangeError("Usage: _http_post_load.ts --port P --size S --seconds D --min N [--probe-ms M]");
}

const head = new TextEncoder().encode(`POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\n\r\n`);
const body = new Uint8Array(probeMs > 0 ? 0 : size).fill(0x59);
const expected = `${size}`;
const latin1 = new TextDecoder("latin1");
let requests = 0;
let received = "";
const started = performance.now();

/** The probe's latencies, in µs. */
const latencies: number[] = [];

function probeFigures(): Record<string, number> {
  if (probeMs === 0) return {};
  const sorted = latencies.slice().sort((a, b) => a - b);
  const at = (q: number) =>
    sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : 0;
  return { probes: sorted.length, probeP50Us: at(0.5), probeP99Us: at(0.99), probeMaxUs: at(1) };
}

function finish(wrong?: string): void {
  const durationUs = Math.round((performance.now() - started) * 1000);
  report("RESULT", {
    requests,
    bytes: requests * size,
    durationUs,
    ...probeFigures(),
    ...(wrong ? { wrong } : {}),
  });
  process.exit(0);
}

/** The probe: `GET /1` on its own connection, `probeMs` after each answer; one byte of `X` expected. */
function startProbe(): void {
  const probe = connect({ host: "127.0.0.1", port, noDelay: true });
  let sentAt = 0;
  let got = "";
  const ask = () => {
    sentAt = performance.now();
    probe.write("GET /1 HTTP/1.1\r\nHost: x\r\n\r\n");
  };
  probe.on("connect", ask);
  probe.on("data", (data: Uint8Array) => {
    got += latin1.decode(data);
    const end = got.indexOf("\r\n\r\n");
    if (end < 0 || got.length < end + 5) return;
    if (!got.startsWith("HTTP/1.1 200 ") || got.slice(end + 4) !== "X") {
      return finish(`the probe's GET /1 answered ${JSON.stringify(got.slice(0, 200))}`);
    }
    latencies.push(Math.round((performance.now() - sentAt) * 1000));
    got = "";
    if (performance.now() - started >= seconds * 1000) return finish();
    setTimeout(ask, probeMs);
  });
  probe.on("error", (err) => finish(`probe socket error: ${err.message}`));
}

function startUploads(): void {
  const socket = connect({ host: "127.0.0.1", port, noDelay: true });
  const send = () => {
    socket.write(head);
    socket.write(body);
  };
  socket.on("connect", send);
  socket.on("data", (data: Uint8Array) => {
    received += latin1.decode(data);
    const end = received.indexOf("\r\n\r\n");
    if (end < 0) return;
    const length = /\r\ncontent-length: *(\d+)/i.exec(received.slice(0, end + 2));
    if (!length) return finish(`an answer without Content-Length: ${JSON.stringify(received.slice(0, 200))}`);
    const total = end + 4 + Number(length[1]);
    if (received.length < total) return;
    if (!received.startsWith("HTTP/1.1 200 ") || received.slice(end + 4, total).trim() !== expected) {
      return finish(`POST /post of ${size} bytes answered ${JSON.stringify(received.slice(0, 200))}`);
    }
    if (received.length > total) return finish(`${received.length - total} bytes after the answer`);
    received = "";
    requests++;
    if (requests >= min && performance.now() - started >= seconds * 1000) return finish();
    send();
  });
  socket.on("error", (err) => finish(`socket error: ${err.message}`));
  socket.on("close", () => finish("the server closed the connection"));
}

if (probeMs > 0) startProbe();
else startUploads();
// A parent that dies closes our stdin: do not outlive it.
process.stdin.on("end", () => process.exit(1));
process.stdin.resume();
