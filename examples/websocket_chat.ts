/**
 * A chat on one asockio core: browser tabs over WebSocket and native clients over TCP, all named clients.
 *
 * One TCP port (default 8080) serves the page with an `HttpResponder` and upgrades `/ws` to WebSocket.
 * Each tab first asks `/join` for its own keyword and secret (the core registers the client with that
 * secret: a page from another site cannot get one), then loads `connectWebSocket` from the same port (one
 * self-contained ES module, built by `scripts/build_websocket_client.ts`) and connects with that secret. A second port
 * takes native framed clients. Every message from anyone reaches every other client.
 *
 * Run: `deno run -A examples/websocket_chat.ts [port]` and open http://127.0.0.1:8080 in two tabs.
 *
 * @module
 */
import { type ClientId, IoCore } from "../mod.ts";
import { type HttpRequest, HttpResponder, type HttpResponse } from "../processors/http_responder.ts";
import process from "node:process";
import { webSocketClientBundle } from "../scripts/build_websocket_client.ts";

/** The URL path the core's own port serves `connectWebSocket` at, as one self-contained ES module. */
export const CLIENT_SCRIPT_PATH = "/asockio_websocket.js";

/** The page's script: join, then connect with `connectWebSocket` (keyword and secret), then chat. */
export const CHAT_PAGE_SCRIPT = `
import { connectWebSocket } from "${CLIENT_SCRIPT_PATH}";
const log = document.getElementById("log");
const show = (line) => { const p = document.createElement("div"); p.textContent = line; log.append(p); };
const { keyword, secret } = await (await fetch("/join")).json();
const client = await connectWebSocket("ws://" + location.host + "/ws", { keyword, secret });
window.chat = { keyword, received: [], send: (message) => client.send(message) };
show("joined as " + keyword);
document.getElementById("say").onsubmit = (event) => {
  event.preventDefault();
  const input = document.getElementById("text");
  client.send(input.value);
  input.value = "";
};
for await (const message of client) {
  window.chat.received.push(message);
  if (message.length < 1000) show(new TextDecoder().decode(message));
}
`;

const PAGE = `<!doctype html>
<meta charset="utf-8"><title>asockio chat</title>
<form id="say"><input id="text" autofocus placeholder="Say something"> <button>Send</button></form>
<div id="log"></div>
<script type="module">${CHAT_PAGE_SCRIPT}</script>
`;

/** Starts the chat core on `port` (0: any) for the web page and `nativePort` for framed clients. */
export async function startChat(port = 8080, nativePort = 0): Promise<{ core: IoCore; ports: number[] }> {
  const clientScript = webSocketClientBundle();
  let joined = 0;
  const chatters = new Set<ClientId>();
  class Site extends HttpResponder {
    override handle(request: HttpRequest): HttpResponse {
      if (request.target === "/join") {
        const keyword = `tab-${++joined}`;
        const secret = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16)).join("");
        chatters.add(core.addClient({ keyword, secret }));
        return { headers: { "content-type": "application/json" }, body: JSON.stringify({ keyword, secret }) };
      }
      if (request.target === CLIENT_SCRIPT_PATH) {
        return { headers: { "content-type": "text/javascript; charset=utf-8" }, body: clientScript };
      }
      if (request.target !== "/") return { status: 404, body: "not found\n" };
      return { headers: { "content-type": "text/html; charset=utf-8" }, body: PAGE };
    }
  }
  const core: IoCore = new IoCore({
    listeners: [
      { transport: "tcp", hostname: "127.0.0.1", port, name: "web", websocket: { path: "/ws" } },
      { transport: "tcp", hostname: "127.0.0.1", port: nativePort, name: "native" },
    ],
    unknownClients: "allow", // the page, /join and the script: HTTP requests on the web port
    unknownClientProcessor: Site,
  });
  chatters.add(core.addClient({ keyword: "terminal" })); // a native client, over TCP from loopback
  const addrs = await core.listen();
  void (async () => {
    // Every message from a chatter goes to every other connected chatter.
    for await (const events of core) {
      for (const from of events.clientsHaveDataToRead) {
        if (!chatters.has(from)) continue;
        const messages = core.getMessagesFromClient(from);
        for (const to of chatters) {
          if (to !== from && core.getClientInfo(to)?.state === "connected") {
            core.sendMessagesToClient(to, messages);
          }
        }
      }
    }
  })();
  return { core, ports: addrs.map((addr) => (addr.transport === "tcp" ? addr.port : 0)) };
}

// Run as a program (not imported by the test).
if (process.argv[1]?.endsWith("websocket_chat.ts")) {
  const { ports } = await startChat(Number(process.argv[2] ?? 8080));
  console.log(
    `Open http://127.0.0.1:${ports[0]} in two tabs; native clients: tcp port ${ports[1]}, keyword terminal`,
  );
}
