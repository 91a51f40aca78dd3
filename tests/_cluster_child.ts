/**
 * Child process for `tests/cluster_nats.test.ts`: one cluster node in its own process, of the same
 * runtime as the test. It starts a core on `127.0.0.1:0` that adopts every keyword, joined to the
 * NATS cluster `test` as node `<node>`, prints `listening <port>` once bound, and runs until killed.
 *
 * Usage: `<runtime> tests/_cluster_child.ts <nats url> <node>`
 *
 * @module
 */
import process from "node:process";
import { connect } from "nats";
import { IoCore } from "../mod.ts";
import { natsCluster } from "../cluster/nats.ts";

const [url, node] = process.argv.slice(2);
const nc = await connect({ servers: url! });
const core = new IoCore({
  listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }],
  acceptUnexpectedKeywords: "adopt",
  cluster: natsCluster(nc, { name: "test", node: node! }),
  logger: null,
});
const [addr] = await core.listen();
if (addr?.transport !== "tcp") throw new Error("Cannot start cluster child: the listener is not TCP");
console.log(`listening ${addr.port}`);
for await (const _events of core) {
  // Events are not read here: the test drives the device and the other node.
}
