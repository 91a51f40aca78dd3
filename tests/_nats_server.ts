/**
 * A real `nats-server` for the cluster tests: started on a random loopback port (`-p -1`) with
 * JetStream and a store in its own temp dir, killed and cleaned up with `await using`.
 *
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import { missingTool, type TempDir, tempDir } from "./_helpers.ts";

/** Why the NATS tests are skipped, with the install command; `undefined` when `nats-server` runs. */
export const noNatsServerReason: string | undefined = missingTool(
  "nats-server",
  "--version",
  "apt-get install -y nats-server",
);

/** A running nats-server. */
export interface NatsServer {
  /** The client port on 127.0.0.1. */
  readonly port: number;
  /** `nats://127.0.0.1:<port>`. */
  readonly url: string;
  /** The server process. */
  readonly process: ChildProcess;
  /** Kills the server (SIGKILL) and removes its store. Safe to call twice. */
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Starts a nats-server (with JetStream unless `jetstream` is false) on loopback, on `port` or a
 * random one (`-1`); resolves once it accepts clients.
 */
export async function startNatsServer(
  jetstream = true,
  clientPort = -1,
  extraArgs: readonly string[] = [],
): Promise<NatsServer> {
  const dir: TempDir = await tempDir("asockio-nats-");
  const child = spawn(
    "nats-server",
    [
      "-a",
      "127.0.0.1",
      "-p",
      String(clientPort),
      ...(jetstream ? ["-js", "-sd", dir.join("store")] : []),
      ...extraArgs,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let log = "";
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`nats-server did not start in 10 s:\n${log}`)), 10_000);
    child.stderr!.on("data", (chunk: Uint8Array) => {
      log += new TextDecoder().decode(chunk);
      const port = /Listening for client connections on [^\s]+:(\d+)/.exec(log)?.[1];
      if (port && log.includes("Server is ready")) {
        clearTimeout(timer);
        resolve(Number(port));
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`nats-server exited with ${code}:\n${log}`));
    });
  }).catch(async (err) => {
    child.kill("SIGKILL");
    await dir.cleanup();
    throw err;
  });
  let stopped: Promise<void> | undefined;
  const stop = () =>
    stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGKILL");
        await exited;
      }
      await dir.cleanup();
    })();
  return { port, url: `nats://127.0.0.1:${port}`, process: child, stop, [Symbol.asyncDispose]: stop };
}

/** A free loopback port: bound, read and released (for a cluster's route ports, fixed up front). */
export async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

/** Three nats-servers joined by routes into one cluster, each with JetStream and its own store. */
export async function startNatsCluster(): Promise<NatsServer[] & AsyncDisposable> {
  const routePorts = [await freePort(), await freePort(), await freePort()];
  const routes = routePorts.map((port) => `nats://127.0.0.1:${port}`).join(",");
  const servers = await Promise.all(routePorts.map((port, i) =>
    startNatsServer(true, -1, [
      "-n",
      `s${i + 1}`,
      "--cluster_name",
      "asockio-test",
      "--cluster",
      `nats://127.0.0.1:${port}`,
      "--routes",
      routes,
    ])
  ));
  return Object.assign(servers, {
    async [Symbol.asyncDispose]() {
      await Promise.all(servers.map((server) => server.stop()));
    },
  });
}
