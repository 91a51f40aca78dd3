/**
 * asockio's end of the streamed-message interop run with the original FI-ASockIOCore
 * (`original_peer.py`; see `bench/results/s6-interop-stream.md`). Run by hand, on any runtime:
 *
 * - `receive [PORT [THRESHOLD]]`: listens on 127.0.0.1 (port printed), registers named client `original`
 *   with `streamThresholdBytes` THRESHOLD (1 MB; 0 for none), reads the original's message as a `MessageStream`, prints its
 *   length, chunk count and sha256, and answers with the sha256 as a whole message.
 * - `send PORT BYTES`: connects as named client `asockio` to the original on 127.0.0.1:PORT and sends
 *   BYTES (byte i is i & 0xff) with `sendMessageStream` in 64 KiB chunks, then waits for `OK`.
 *
 * @module
 */
import { createHash } from "node:crypto";
import process from "node:process";
import { IoCore } from "../../mod.ts";

const [role, portArg, bytesArg] = process.argv.slice(2);

function pattern(from: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (from + i) & 0xff;
  return out;
}

/** The payload in 64 KiB chunks, each passed to `seen` as it goes. */
async function* source(bytes: number, seen: (chunk: Uint8Array) => void): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes; at += 65536) {
    const chunk = pattern(at, Math.min(65536, bytes - at));
    seen(chunk);
    yield chunk;
  }
}

if (role === "receive") {
  const core = new IoCore({
    listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: Number(portArg ?? 0) }],
    streamThresholdBytes: Number(bytesArg ?? 1_000_000) || undefined, // `receive PORT 0`: whole messages
  });
  const [addr] = await core.listen();
  const id = core.addClient({ keyword: "original" });
  console.log(`asockio: listening on ${addr!.transport === "tcp" ? addr!.port : "?"}`);
  for (;;) {
    const r = await core.ioIteration(1000);
    if (r.clientsHaveDataToRead.has(id)) {
      for (const m of core.getMessagesFromClient(id)) {
        const digest = createHash("sha256").update(m).digest("hex");
        console.log(`asockio: received a whole message of ${m.length} bytes, sha256 ${digest}`);
        core.sendMessageToClient(id, digest);
      }
    }
    if (r.clientsHaveMessageStream.has(id)) {
      const stream = core.takeMessageStream(id)!;
      const started = performance.now();
      const hash = createHash("sha256");
      let bytes = 0;
      let chunks = 0;
      for await (const chunk of stream.readable) {
        hash.update(chunk);
        bytes += chunk.length;
        chunks++;
      }
      const digest = hash.digest("hex");
      console.log(
        `asockio: received a MessageStream, byteLength ${stream.byteLength}, read ${bytes} bytes in ${chunks} ` +
          `chunks in ${((performance.now() - started) / 1000).toFixed(3)} s, sha256 ${digest}`,
      );
      core.sendMessageToClient(id, digest);
    }
    if (r.clientsWithDisconnectedConnection.has(id)) break;
  }
  await core.close();
} else if (role === "send") {
  const bytes = Number(bytesArg);
  const core = new IoCore({ logger: null });
  const id = core.addClient({
    keyword: "asockio",
    connect: { transport: "tcp", hostname: "127.0.0.1", port: Number(portArg) },
  });
  while (!(await core.ioIteration(1000)).newlyConnectedExpectedClients.has(id));
  const hash = createHash("sha256");
  const started = performance.now();
  const sent = core.sendMessageStream(id, source(bytes, (chunk) => hash.update(chunk)), bytes);
  let answered = false;
  while (!answered) {
    const r = await core.ioIteration(1000);
    for (const m of core.getMessagesFromClient(id)) {
      console.log(`asockio: the original answered ${JSON.stringify(new TextDecoder().decode(m))}`);
      answered = true;
    }
    if (r.clientsWithDisconnectedConnection.has(id)) throw new Error("The original disconnected");
  }
  await sent;
  console.log(
    `asockio: streamed ${bytes} bytes with sendMessageStream in ${
      ((performance.now() - started) / 1000).toFixed(3)
    } s (to the answer), sha256 ${hash.digest("hex")}`,
  );
  await core.close();
} else {
  console.error("Usage: stream_interop.ts receive [PORT [THRESHOLD]] | send PORT BYTES");
  process.exit(2);
}
