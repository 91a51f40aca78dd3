/**
 * The nodes of the cluster tests: a core joined by `natsCluster` to a NATS server, and a wait for where a
 * keyword is held. Shared by `cluster_nats.test.ts` and `cluster_nats_topology.test.ts`.
 */
import { fileURLToPath } from "node:url";
import { connect } from "nats";
import { type IoCore, type IoCoreOptions, TimeoutError } from "../mod.ts";
import { natsCluster, type NatsClusterOptions } from "../cluster/nats.ts";
import { startCore } from "./_core_fixture.ts";
import { noNatsServerReason } from "./_nats_server.ts";

/** The script of a node in another process (`.ts`, or `.js` in the npm build's tests). */
export const CHILD = fileURLToPath(import.meta.url).replace(/_cluster_nodes\.(ts|js)$/, "_cluster_child.$1");

/** One TCP listener on loopback, port 0. */
export const TCP = [{ transport: "tcp" as const, hostname: "127.0.0.1", port: 0 }];
/** The options of a test that needs `nats-server`. */
export const NATS = { timeout: 60_000, skip: noNatsServerReason };

/** A core of a cluster: a node with its own NATS connection, closed with `await using`. */
export async function node(
  url: string,
  name: string,
  options: Pick<NatsClusterOptions, "requestTimeoutMs" | "kv"> = {},
  core: Omit<IoCoreOptions, "cluster"> = {},
) {
  // A loaded machine may refuse the first connect to a server of a routed cluster that reported
  // ready: retry it as a reconnect (the test's timeout bounds the wait).
  const nc = await connect({
    servers: url,
    reconnectTimeWait: 100,
    maxReconnectAttempts: -1,
    waitOnFirstConnect: true,
  });
  const fx = await startCore({
    listeners: TCP,
    acceptUnexpectedKeywords: "adopt",
    cluster: natsCluster(nc, { name: "test", node: name, ...options }),
    ...core,
  });
  return {
    fx,
    core: fx.core,
    nc,
    async [Symbol.asyncDispose]() {
      await fx.close();
      await nc.close();
    },
  };
}

/** Waits until `from` sees `keyword` held by `where` (`undefined`: by no node). */
export async function located(from: IoCore, keyword: string, where: string | undefined): Promise<void> {
  const deadline = Date.now() + 10_000;
  // A node cut off from NATS holds its subscriptions until the server notices: a TimeoutError meanwhile.
  const where_ = () =>
    from.locateKeyword(keyword).catch((err) => err instanceof TimeoutError ? null : Promise.reject(err));
  for (let at; (at = await where_()) === null || at?.node !== where;) {
    if (Date.now() > deadline) throw new Error(`${keyword} is not located on ${where}`);
  }
}
