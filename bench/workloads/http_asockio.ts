/**
 * B1 and B5 server: asockio's keep-alive HTTP/1.1 responder as the core's `unknownClientProcessor`.
 * `GET /<size>` answers `<size>` bytes of `X`; a `POST` (up to `MAX_UPLOAD`) answers its body's length.
 * Prints `READY {"port","pid"}`; answers `stats` with the connections it accepted and the requests
 * it answered so far (B5 reads each worker's share from them); exits when stdin closes.
 *
 * Options: `--port P` (default 0: the system picks), `--reuse-port` (B5's workers share one port;
 * Deno needs `--unstable-net` for it), `--cert FILE --key FILE` (HTTPS: a TLS listener with these PEM
 * files) and `--transport deno|bun|node` (default: the runtime's native one).
 *
 * @module
 */
import { readFileSync } from "node:fs";
import process from "node:process";
import { IoCore, type IoCoreListenerOptions, type TransportName } from "../../mod.ts";
import { type HttpRequest, HttpResponder, type HttpResponse } from "../../processors/http_responder.ts";
import { numArg, parseArgs, report, serveControl } from "../_child.ts";
import { bodyFor, MAX_UPLOAD } from "./_bodies.ts";

const args = parseArgs();
let accepted = 0;
let answered = 0;

class Sized extends HttpResponder {
  static override maxBodyBytes = MAX_UPLOAD;

  constructor() {
    super();
    accepted++;
  }

  override handle(request: HttpRequest): HttpResponse {
    answered++;
    if (request.method === "POST") return { body: `${request.body.length}` };
    const body = bodyFor(request.target);
    return body ? { body } : { status: 404, body: "not found\n" };
  }
}

const where = { hostname: "127.0.0.1", port: numArg(args, "port", 0), reusePort: args.has("reuse-port") };
const certFile = args.get("cert");
const listener: IoCoreListenerOptions = certFile === undefined ? { transport: "tcp", ...where } : {
  transport: "tls",
  ...where,
  cert: readFileSync(certFile, "utf8"),
  key: readFileSync(args.get("key") ?? "", "utf8"),
};
const transport = args.get("transport") as TransportName | undefined;
const core = new IoCore({
  listeners: [listener],
  ...(transport === undefined ? {} : { transport }),
  rawConnection: () => true,
  unknownClients: "allow",
  unknownClientProcessor: Sized,
  logger: null,
});
const [addr] = await core.listen();
// Nothing waits in ioIteration (a waiting call is woken per drain); a slow poll keeps the core's
// event sets from growing with every connection.
const poll = setInterval(() => core.ioIteration(0), 1000);
serveControl(() => ({ connections: core.stats().connections, accepted, answered }), async () => {
  clearInterval(poll);
  await core.close();
});
report("READY", {
  port: addr!.transport === "tcp" || addr!.transport === "tls" ? addr!.port : 0,
  pid: process.pid,
});
