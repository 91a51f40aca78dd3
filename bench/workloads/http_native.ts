/**
 * B1 contender: the runtime's own HTTP server (`Deno.serve`, `Bun.serve` or `node:http`) answering
 * the same cached bodies, and a `POST`'s body length once it has read the whole body. With `--cert FILE --key FILE` it serves HTTPS (`node:https` on Node).
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { Buffer } from "node:buffer";
import process from "node:process";
import { runtimeName } from "../_native.ts";
import { parseArgs, report, serveControl } from "../_child.ts";
import { bodyFor } from "./_bodies.ts";

/** PEM texts, when serving HTTPS. */
interface Pem {
  cert: string;
  key: string;
}
interface DenoServe {
  serve(
    options: { hostname: string; port: number; onListen?: (addr: { port: number }) => void } & Partial<Pem>,
    handler: (request: Request) => Response | Promise<Response>,
  ): { shutdown(): Promise<void> };
}
interface BunServe {
  serve(
    options: {
      hostname: string;
      port: number;
      fetch: (request: Request) => Response | Promise<Response>;
      tls?: Pem;
    },
  ): {
    port: number;
    stop(force?: boolean): void;
  };
}

function answer(request: Request): Response | Promise<Response> {
  if (request.method === "POST") return request.arrayBuffer().then((b) => new Response(`${b.byteLength}`));
  const url = request.url;
  const body = bodyFor(url.slice(url.indexOf("/", url.indexOf("//") + 2)));
  return body ? new Response(body) : new Response("not found\n", { status: 404 });
}

const args = parseArgs();
const certFile = args.get("cert");
const pem: Pem | undefined = certFile === undefined
  ? undefined
  : { cert: readFileSync(certFile, "utf8"), key: readFileSync(args.get("key") ?? "", "utf8") };
let port = 0;
let stop: () => unknown;
const runtime = runtimeName();
if (runtime === "deno") {
  const deno = (globalThis as unknown as { Deno: DenoServe }).Deno;
  let listening!: (port: number) => void;
  const bound = new Promise<number>((resolve) => listening = resolve);
  const server = deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: (addr) => listening(addr.port), ...pem },
    answer,
  );
  port = await bound;
  stop = () => server.shutdown();
} else if (runtime === "bun") {
  const server = (globalThis as unknown as { Bun: BunServe }).Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: answer,
    ...(pem === undefined ? {} : { tls: pem }),
  });
  port = server.port;
  stop = () => server.stop(true);
} else {
  const respond = (req: IncomingMessage, res: ServerResponse) => {
    if (req.method === "POST") {
      // The whole body in one buffer, as the others have it.
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        const text = `${Buffer.concat(chunks).length}`;
        res.writeHead(200, { "content-length": text.length });
        res.end(text);
      });
      return;
    }
    const body = bodyFor(req.url ?? "");
    if (!body) {
      res.writeHead(404, { "content-length": 10 });
      res.end("not found\n");
      return;
    }
    res.writeHead(200, { "content-length": body.length });
    res.end(body);
  };
  const server = pem === undefined ? createServer(respond) : createHttpsServer(pem, respond);
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen({ host: "127.0.0.1", port: 0, backlog: 4096 }, resolve));
  const address = server.address();
  port = typeof address === "object" && address ? address.port : 0;
  stop = () => server.close();
}
serveControl(() => ({}), () => stop());
report("READY", { port, pid: process.pid });
