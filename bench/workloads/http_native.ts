/**
 * B1 contender: the runtime's own HTTP server (`Deno.serve`, `Bun.serve` or `node:http`) answering
 * the same cached bodies.
 *
 * @module
 */
import { createServer } from "node:http";
import process from "node:process";
import { runtimeName } from "../_native.ts";
import { report, serveControl } from "../_child.ts";
import { bodyFor } from "./_bodies.ts";

interface DenoServe {
  serve(
    options: { hostname: string; port: number; onListen?: (addr: { port: number }) => void },
    handler: (request: Request) => Response,
  ): { shutdown(): Promise<void> };
}
interface BunServe {
  serve(options: { hostname: string; port: number; fetch: (request: Request) => Response }): {
    port: number;
    stop(force?: boolean): void;
  };
}

function answer(request: Request): Response {
  const url = request.url;
  const body = bodyFor(url.slice(url.indexOf("/", url.indexOf("//") + 2)));
  return body ? new Response(body) : new Response("not found\n", { status: 404 });
}

let port = 0;
let stop: () => unknown;
const runtime = runtimeName();
if (runtime === "deno") {
  const deno = (globalThis as unknown as { Deno: DenoServe }).Deno;
  let listening!: (port: number) => void;
  const bound = new Promise<number>((resolve) => listening = resolve);
  const server = deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: (addr) => listening(addr.port) },
    answer,
  );
  port = await bound;
  stop = () => server.shutdown();
} else if (runtime === "bun") {
  const server = (globalThis as unknown as { Bun: BunServe }).Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: answer,
  });
  port = server.port;
  stop = () => server.stop(true);
} else {
  const server = createServer((req, res) => {
    const body = bodyFor(req.url ?? "");
    if (!body) {
      res.writeHead(404, { "content-length": 10 });
      res.end("not found\n");
      return;
    }
    res.writeHead(200, { "content-length": body.length });
    res.end(body);
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen({ host: "127.0.0.1", port: 0, backlog: 4096 }, resolve));
  const address = server.address();
  port = typeof address === "object" && address ? address.port : 0;
  stop = () => server.close();
}
serveControl(() => ({}), () => stop());
report("READY", { port, pid: process.pid });
