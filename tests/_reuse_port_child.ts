/**
 * Child process for `tests/reuse_port.test.ts`, of the same runtime as the test.
 *
 * - `serve <port>`: one core on `127.0.0.1:<port>` with `reusePort: true`, answering every HTTP
 *   request with `worker <pid> accepted <n>`; prints `listening <port>` once bound, and closes on SIGTERM.
 * - `refuse`: listens with `reusePort: true` where the runtime cannot, prints `RESULT <json>` with the
 *   error's class name and message, closes the core and ends on its own (exit code 0).
 *
 * Usage: `<runtime> tests/_reuse_port_child.ts serve <port> | refuse`
 *
 * @module
 */
import process from "node:process";
import { IoCore } from "../mod.ts";
import { type HttpRequest, HttpResponder, type HttpResponse } from "../processors/http_responder.ts";

const [mode, portArg] = process.argv.slice(2);

if (mode === "serve") {
  let accepted = 0;
  class Count extends HttpResponder {
    override onConnected(): void {
      accepted++;
    }
    override handle(_request: HttpRequest): HttpResponse {
      return { body: `worker ${process.pid} accepted ${accepted}\n` };
    }
  }
  const core = new IoCore({
    listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: Number(portArg), reusePort: true }],
    rawConnection: () => true,
    unknownClients: "allow",
    unknownClientProcessor: Count,
  });
  const [addr] = await core.listen();
  console.log(`listening ${addr?.transport === "tcp" ? addr.port : -1}`);
  process.on("SIGTERM", () => void core.close());
  for await (const _events of core) { /* answered by the processor */ }
  process.exit(0);
} else if (mode === "refuse") {
  const core = new IoCore({
    listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0, reusePort: true }],
  });
  let result: { listened: boolean; name?: string; message?: string };
  try {
    await core.listen();
    result = { listened: true };
  } catch (err) {
    result = { listened: false, name: (err as Error).name, message: (err as Error).message };
  }
  await core.close();
  console.log(`RESULT ${JSON.stringify(result)}`);
} else {
  console.error("Usage: _reuse_port_child.ts serve <port> | refuse");
  process.exitCode = 2;
}
