/**
 * `npm start`: the original's "commands processing from manager" example on one asockio core.
 *
 * One server core listens on TCP, on a UNIX socket and on an HTTP port. A `manager client` (over
 * the UNIX socket) sends commands that the server executes, an ordinary `client` (over TCP) gets
 * its messages echoed, both handled with the plain-code `ioIteration` API, and unknown clients on
 * the HTTP port are answered by an `InlineProcessor`. Then it measures commands per second.
 *
 * Run with `--serve` to keep the HTTP port open for `curl` until Ctrl+C.
 */
import { IoCore, type IoIterationResult } from "../mod.ts";
import { type HttpRequest, HttpResponder, type HttpResponse } from "../processors/http_responder.ts";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";

const COMMANDS = Number(process.env.DEMO_COMMANDS ?? 100_000);
const serve = process.argv.includes("--serve");
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const log = (who: string, what: string) => console.log(`${who.padEnd(8)} ${what}`);

class Hello extends HttpResponder {
  override handle(request: HttpRequest): HttpResponse {
    return { headers: { "content-type": "text/plain" }, body: `asockio says hello to ${request.target}\n` };
  }
}

const dir = await mkdtemp(join(tmpdir(), "asockio-demo-"));
const server = new IoCore({
  listeners: [
    { transport: "tcp", hostname: "127.0.0.1", port: 0, name: "tcp" },
    { transport: "unix", path: join(dir, "server.sock"), name: "unix" },
    { transport: "tcp", hostname: "127.0.0.1", port: 0, name: "http" },
  ],
  rawConnection: ({ listener }) => listener.name === "http",
  unknownClients: "allow",
  unknownClientProcessor: Hello,
});
const [tcpAddr, unixAddr, httpAddr] = await server.listen();
if (tcpAddr?.transport !== "tcp" || unixAddr?.transport !== "unix" || httpAddr?.transport !== "tcp") {
  throw new Error("Unexpected listener addresses");
}
log(
  "server",
  `${server.transportName} transport; tcp ${tcpAddr.port}, unix ${unixAddr.path}, http ${httpAddr.port}`,
);
const managerId = server.addClient({ keyword: "manager client" });
server.addClient({ keyword: "client" });

// The server loop, as in the original: commands from the manager, echo for the ordinary client.
let shutDown = false;
function serverIteration(r: IoIterationResult): void {
  for (const id of r.newlyConnectedExpectedClients) {
    log(
      "server",
      `${server.getClientInfo(id)?.keywordText} connected via ${server.getClientInfo(id)?.listener?.name}`,
    );
  }
  for (const id of r.newlyConnectedUnknownClients) log("server", `unknown client ${id} connected (HTTP)`);
  for (const id of r.clientsHaveDataToRead) {
    const messages = server.getMessagesFromClient(id);
    if (id !== managerId) {
      server.sendMessagesToClient(id, messages);
      continue;
    }
    const answers: string[] = [];
    for (const message of messages) {
      const [verb, argument] = JSON.parse(decoder.decode(message)) as [string, string];
      if (verb === "do") answers.push(argument.toUpperCase());
      else if (verb === "server command" && argument === "shut down") shutDown = true;
    }
    if (answers.length) server.sendMessagesToClient(id, answers);
  }
  for (const id of r.clientsWithDisconnectedConnection) {
    if (server.getClientInfo(id)) log("server", `${server.getClientInfo(id)?.keywordText} disconnected`);
  }
}
const serverLoop = (async () => {
  while (!shutDown) serverIteration(await server.ioIteration(500));
})();

// Two client cores in the same process, connecting by keyword.
const managerCore = new IoCore();
const manager = managerCore.addClient({
  keyword: "manager client",
  connect: { transport: "unix", path: unixAddr.path },
});
const clientCore = new IoCore();
const client = clientCore.addClient({ keyword: "client", connect: { transport: "tcp", port: tcpAddr.port } });
for (const [core, id, name] of [[managerCore, manager, "manager"], [clientCore, client, "client"]] as const) {
  const r = await core.ioIteration(5000);
  if (!r.newlyConnectedExpectedClients.has(id)) throw new Error(`${name} did not connect`);
  log(name, `connected, got OK (state ${core.getClientInfo(id)?.state})`);
}

clientCore.sendMessageToClient(client, "hello over TCP");
let echo: Uint8Array | undefined;
while (!echo) {
  await clientCore.ioIteration(1000);
  echo = clientCore.getMessageFromClient(client);
}
log("client", `echo: ${decoder.decode(echo)}`);

const response = await fetch(`http://127.0.0.1:${httpAddr.port}/demo`);
log("http", `GET /demo -> ${response.status} ${(await response.text()).trim()}`);

// Commands from the manager, pipelined, over the UNIX socket.
const command = encoder.encode(JSON.stringify(["do", "some work"]));
const started = performance.now();
const batch = 1000;
let sent = 0;
let answered = 0;
while (answered < COMMANDS) {
  while (sent < COMMANDS && sent - answered < 20 * batch) {
    const n = Math.min(batch, COMMANDS - sent);
    managerCore.sendMessagesToClient(manager, Array.from({ length: n }, () => command));
    sent += n;
  }
  await managerCore.ioIteration(1000);
  for (const answer of managerCore.getMessagesFromClient(manager)) {
    if (answered === 0) log("manager", `first answer: ${decoder.decode(answer)}`);
    answered++;
  }
}
const seconds = (performance.now() - started) / 1000;
log(
  "manager",
  `${COMMANDS} commands answered in ${seconds.toFixed(2)} s: ${Math.round(COMMANDS / seconds)} round trips/s`,
);

if (serve) {
  log("http", `try: curl http://127.0.0.1:${httpAddr.port}/hello   (Ctrl+C to stop)`);
  await new Promise(() => {});
}
managerCore.sendMessageToClient(manager, JSON.stringify(["server command", "shut down"]));
await serverLoop;
log("server", "shut down by the manager");
await Promise.all([managerCore.close(), clientCore.close(), server.close()]);
await rm(dir, { recursive: true, force: true });
