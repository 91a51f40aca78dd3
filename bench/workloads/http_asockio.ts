/**
 * B1 server: asockio's keep-alive HTTP/1.1 responder as the core's `unknownClientProcessor`.
 * Prints `READY {"port","pid"}`; exits when stdin closes.
 *
 * @module
 */
import process from "node:process";
import { IoCore } from "../../mod.ts";
import { type HttpRequest, HttpResponder, type HttpResponse } from "../../processors/http_responder.ts";
import { report, serveControl } from "../_child.ts";
import { bodyFor } from "./_bodies.ts";

class Sized extends HttpResponder {
  override handle(request: HttpRequest): HttpResponse {
    const body = bodyFor(request.target);
    return body ? { body } : { status: 404, body: "not found\n" };
  }
}

const core = new IoCore({
  listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }],
  rawConnection: () => true,
  unknownClients: "allow",
  unknownClientProcessor: Sized,
  logger: null,
});
const [addr] = await core.listen();
// Nothing waits in ioIteration (a waiting call is woken per drain); a slow poll keeps the core's
// event sets from growing with every connection.
const poll = setInterval(() => core.ioIteration(0), 1000);
serveControl(() => ({ connections: core.stats().connections }), async () => {
  clearInterval(poll);
  await core.close();
});
report("READY", { port: addr!.transport === "tcp" ? addr!.port : 0, pid: process.pid });
