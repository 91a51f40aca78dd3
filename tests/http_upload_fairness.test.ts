/**
 * While one client uploads a large body to an `HttpResponder`, another client's GETs are answered:
 * the uploading connection's reads, which complete at once while the kernel holds its bytes, must
 * not keep the other connection's reads from running (issue 25, "others are answered with their
 * usual latency"; on Deno the read loop sleeps on a zero timer now and then).
 *
 * The upload comes from a child process, so it keeps the server's receive buffer full whatever this
 * process does. The check is a condition, not a time: GETs the server answered while it had read
 * some but not all of the upload's bytes.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { MiB } from "./_helpers.ts";
import { type HttpRequest, HttpResponder, type HttpResponse } from "../processors/http_responder.ts";
import { startProcessorCore } from "./_core_fixture.ts";
import { NetPeer } from "./_net_client.ts";
import { spawnChildPeer } from "./_child_peers.ts";

const BODY = 64 * MiB;
/** GETs the server must answer while the upload is being read. */
const DURING = 3;
/**
 * The most of the upload the server may read between two GETs it answers (or before the first, or
 * after the last): half of it. Before the fix, Deno read 44–64 MiB of 64 at a stretch; after it, 2–7
 * MiB on a loaded machine (the loop sleeps once per 10 ms of reading at most, so a faster machine reads
 * more between sleeps).
 */
const MAX_GAP = 32 * MiB;
/** GETs sent at most, one at a time (the loop ends earlier, once the upload is answered). */
const MAX_GETS = 5000;

/**
 * Child peer: connects, sends `POST /up` with a body of `size` bytes in 1 MiB writes as fast as the
 * socket takes them, prints `answer <status line>` once the whole answer arrived, and exits.
 * Arguments: host port size.
 */
const UPLOAD_PEER = `
import net from "node:net";
import process from "node:process";
const [host, port, sizeArg] = process.argv.slice(2);
const size = Number(sizeArg);
const piece = new Uint8Array(1024 * 1024).fill(0x59);
let sent = 0;
let got = "";
const socket = net.connect({ host, port: Number(port) }, () => {
  socket.write("POST /up HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: " + size + "\\r\\n\\r\\n");
  pump();
});
function pump() {
  while (sent < size) {
    const n = Math.min(piece.length, size - sent);
    sent += n;
    if (!socket.write(n === piece.length ? piece : piece.subarray(0, n))) return void socket.once("drain", pump);
  }
}
socket.on("data", (chunk) => {
  got += chunk.toString("latin1");
  const end = got.indexOf("\\r\\n\\r\\n");
  const length = /content-length: *(\\d+)/i.exec(got);
  if (end >= 0 && length && got.length >= end + 4 + Number(length[1])) {
    process.stdout.write("answer " + got.slice(0, got.indexOf("\\r\\n")) + " " + got.slice(end + 4) + "\\n");
    process.exit(0);
  }
});
socket.on("error", (err) => { process.stdout.write("error " + err.message + "\\n"); process.exit(1); });
socket.on("close", () => { process.stdout.write("closed\\n"); process.exit(1); });
`;

/**
 * What the server saw: the upload's bytes read so far, GETs answered while it was partly read, and
 * the most upload bytes it read between two of them (`lastMark`: the count at the last one).
 */
const seen = { uploadRead: 0, uploadAnswered: false, getsDuring: 0, gets: 0, lastMark: 0, maxGap: 0 };
const UPLOAD_HEAD = `POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: ${BODY}\r\n\r\n`.length;

class Upload extends HttpResponder {
  static override maxBodyBytes = BODY;
  #uploading = false;

  override onDataReceived(data: Uint8Array): void | Promise<void> {
    if (data[0] === 0x50 /* P */ && seen.uploadRead === 0) this.#uploading = true;
    if (this.#uploading) seen.uploadRead += data.length;
    return super.onDataReceived(data);
  }

  override handle(request: HttpRequest): HttpResponse {
    if (request.method === "POST") {
      seen.uploadAnswered = true;
      seen.maxGap = Math.max(seen.maxGap, seen.uploadRead - seen.lastMark);
      return { body: `${request.body.length}` };
    }
    seen.gets++;
    if (seen.uploadRead > 0 && seen.uploadRead < UPLOAD_HEAD + BODY) {
      seen.getsDuring++;
      seen.maxGap = Math.max(seen.maxGap, seen.uploadRead - seen.lastMark);
      seen.lastMark = seen.uploadRead;
    }
    return { body: `${request.target} ok` };
  }
}

describe("HttpResponder while another client uploads", () => {
  it(
    "answers another connection's GETs while it reads a 64 MiB upload, one per 32 MiB read at least",
    { timeout: 120_000 },
    async () => {
      await using fx = await startProcessorCore(Upload, { logger: null });
      Object.assign(seen, {
        uploadRead: 0,
        uploadAnswered: false,
        getsDuring: 0,
        gets: 0,
        lastMark: 0,
        maxGap: 0,
      });
      const getter = await NetPeer.connect(fx.port());
      let answered = 0;
      const get = async (i: number): Promise<void> => {
        getter.write(`GET /g${i} HTTP/1.1\r\nHost: x\r\n\r\n`);
        const ok = await getter.until(() => getter.text().endsWith(`/g${i} ok`), 30_000);
        assert.ok(ok, `GET /g${i} answered (${answered} before it)`);
        answered++;
      };
      await get(0);
      const uploader = await spawnChildPeer(fx.dir.path, "upload", UPLOAD_PEER, [
        "127.0.0.1",
        String(fx.port()),
        String(BODY),
      ]);
      try {
        for (let i = 1; i <= MAX_GETS && !seen.uploadAnswered; i++) await get(i);
        const line = await uploader.waitForLine((l) => l !== "", 60_000);
        assert.equal(line, `answer HTTP/1.1 200 OK ${BODY}`, "the upload is read whole and answered");
      } finally {
        uploader.kill("SIGKILL");
      }
      assert.ok(
        seen.getsDuring >= DURING,
        `at least ${DURING} GETs answered while the upload was being read: ${seen.getsDuring} ` +
          `(of ${seen.gets} GETs; ${answered} answers received)`,
      );
      assert.ok(
        seen.maxGap <= MAX_GAP,
        `no more than ${MAX_GAP} upload bytes read between two GETs answered: ${seen.maxGap}`,
      );
      getter.end();
      await getter.outcome();
    },
  );
});
