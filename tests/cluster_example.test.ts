/**
 * `examples/cluster.ts --nats`: the launcher's workers join one cluster over a real `nats-server`,
 * and a message sent through one worker reaches a device connected to another (skipped, with the
 * install command, where `nats-server` is missing; and where the runtime cannot share a port).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import net from "node:net";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { detectRuntime } from "../mod.ts";
import { MAX_RESTARTS_PER_MINUTE } from "../examples/cluster.ts";
import { noNatsServerReason, startNatsServer } from "./_nats_server.ts";
import { text, WirePeer } from "./_wire_peer.ts";
import { delay } from "./_helpers.ts";

// Imported so that the npm build compiles the example beside this test (and runs that copy).
const EXAMPLE = fileURLToPath(import.meta.url).replace(
  /tests[\\/]cluster_example\.test\.(ts|js)$/,
  "examples/cluster.$1",
);
const [major = 0, minor = 0] = process.versions.node.split(".").map(Number);
const skip = noNatsServerReason ??
  (detectRuntime() === "node" && !(major > 22 || (major === 22 && minor >= 12))
    ? `node:net supports reusePort from Node 22.12, this is ${process.version}`
    : undefined);

/** One HTTP GET on a new connection (so the kernel may pick another worker); the answer's body. */
function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => {
      socket.write(`GET ${path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`);
    });
    let answer = "";
    socket.setEncoding("utf8").on("data", (chunk: string) => (answer += chunk));
    socket.on("error", reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error("no answer in 10 s")));
    socket.on("close", () => {
      const status = Number(/^HTTP\/1\.1 (\d+)/.exec(answer)?.[1] ?? 0);
      resolve({ status, body: answer.slice(answer.indexOf("\r\n\r\n") + 4) });
    });
  });
}

describe("examples/cluster.ts --nats", () => {
  it(
    "sends through one worker to a device connected to another",
    { timeout: 60_000, skip },
    async () => {
      assert.equal(MAX_RESTARTS_PER_MINUTE, 10);
      await using nats = await startNatsServer();
      const args = detectRuntime() === "deno" ? ["run", "-A", "--unstable-net", EXAMPLE] : [EXAMPLE];
      const launcher = spawn(process.execPath, [
        ...args,
        "--workers",
        "2",
        "--port",
        "0",
        "--device-port",
        "0",
        "--nats",
        nats.url,
      ], { stdio: ["ignore", "pipe", "pipe"] });
      const exited = new Promise((resolve) => launcher.once("exit", resolve));
      let stderr = "";
      launcher.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
      try {
        const [httpPort, devicePort] = await new Promise<[number, number]>((resolve, reject) => {
          let out = "";
          launcher.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
            out += chunk;
            const match = /launcher: 2 workers on http:\/\/[^ ]+:(\d+), devices on [^ ]+:(\d+)/.exec(out);
            if (match) resolve([Number(match[1]), Number(match[2])]);
          });
          launcher.once(
            "exit",
            (code) => reject(new Error(`launcher exited with ${code}: ${out}\n${stderr}`)),
          );
        });
        assert.equal((await get(httpPort, "/send?to=sensor-17&text=x")).status, 404, "offline at first");
        const device = await WirePeer.handshake(
          { transport: "tcp", hostname: "127.0.0.1", port: devicePort },
          "sensor-17",
        );
        // New connections land on either worker: send until one went through the other worker.
        let sent = 0;
        let crossed = false;
        for (const deadline = Date.now() + 30_000; !crossed;) {
          assert.ok(Date.now() < deadline, "a send through the worker that does not hold the device");
          const { status, body } = await get(httpPort, `/send?to=sensor-17&text=hello-${sent}`);
          if (status !== 200) {
            await delay(20); // the device's keyword is still being announced
            continue;
          }
          const match = /^sent by (\S+) to sensor-17 on (\S+)$/.exec(body.trim());
          assert.ok(match, body);
          assert.equal(text(await device.next()), `hello-${sent++}`);
          crossed = match[1] !== match[2];
        }
        device.close();
      } finally {
        launcher.kill("SIGTERM");
        await exited;
      }
    },
  );
});
