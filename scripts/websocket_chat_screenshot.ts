/**
 * Retakes the README's screenshots of `examples/websocket_chat.ts`: two Chromium tabs (Debian's
 * `chromium`, driven by `playwright-core`) load the page and `connectWebSocket` from the core's port,
 * each types a line into the page's form, and a native TCP client says something too. Once each tab
 * shows what the others sent, both are saved (420 × 260) to `docs/websocket_chat_tab1.png` and
 * `docs/websocket_chat_tab2.png`.
 *
 * ```sh
 * deno run -A scripts/websocket_chat_screenshot.ts [--chromium /usr/bin/chromium]
 * ```
 *
 * @module
 */
import process from "node:process";
import { connect, type Socket } from "node:net";
import { chromium, type Page } from "playwright-core";
import { startChat } from "../examples/websocket_chat.ts";
import { parseCli } from "./_cli.mjs";

const CLI = {
  command: "deno run -A scripts/websocket_chat_screenshot.ts [options]",
  summary: "Retakes docs/websocket_chat_tab{1,2}.png: the WebSocket chat example in two Chromium tabs.",
  options: {
    chromium: { type: "string", value: "PATH", default: "/usr/bin/chromium", help: "the Chromium binary" },
    out: { type: "string", value: "DIR", default: "docs", help: "where the two PNG files go" },
  },
  notes: "Needs Chromium (apt-get install -y chromium) and playwright-core (a dev dependency).",
} as const;
const args = parseCli(process.argv.slice(2), CLI);

/** One framed message: an 8-byte little-endian length, then the bytes. */
function frame(text: string): Uint8Array {
  const payload = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + payload.length);
  new DataView(out.buffer).setUint32(0, payload.length, true);
  out.set(payload, 8);
  return out;
}

/** A native client over TCP, named `terminal`: resolves once the core answered its keyword. */
function terminal(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => socket.write(frame("terminal")));
    socket.once("data", () => resolve(socket)); // "OK", framed
    socket.once("error", reject);
  });
}

/** Types `text` into the page's form and sends it. */
async function say(page: Page, text: string): Promise<void> {
  await page.fill("#text", text);
  await page.click("button");
}

/** Waits until the page's log shows `line`. */
function shows(page: Page, line: string): Promise<unknown> {
  return page.waitForFunction(
    (expected) => {
      // Runs in the page: `document` is the browser's, not a global here.
      const doc = (globalThis as unknown as {
        document: { querySelectorAll(s: string): ArrayLike<{ textContent: string | null }> };
      }).document;
      return Array.from(doc.querySelectorAll("#log div"), (d) => d.textContent).includes(expected);
    },
    line,
    { timeout: 20_000 },
  );
}

const { core, ports } = await startChat(0, 0);
const browser = await chromium.launch({ executablePath: args.chromium as string, args: ["--no-sandbox"] });
try {
  const tcp = await terminal(ports[1]!);
  const tabs: Page[] = [];
  for (const n of [1, 2]) {
    const page = await browser.newPage({ viewport: { width: 420, height: 260 } });
    await page.goto(`http://127.0.0.1:${ports[0]}/`);
    await shows(page, `joined as tab-${n}`);
    tabs.push(page);
  }
  const [tab1, tab2] = tabs as [Page, Page];
  await say(tab1, "hello from tab 1");
  await shows(tab2, "hello from tab 1");
  await say(tab2, "hi tab 1, this is tab 2");
  await shows(tab1, "hi tab 1, this is tab 2");
  tcp.write(frame("and hello from a TCP client"));
  await shows(tab1, "and hello from a TCP client");
  await shows(tab2, "and hello from a TCP client");
  for (const [i, page] of tabs.entries()) {
    const path = `${args.out}/websocket_chat_tab${i + 1}.png`;
    await page.screenshot({ path });
    console.log(`wrote ${path}`);
  }
  tcp.destroy();
} finally {
  await browser.close();
  await core.close();
}
