/**
 * Child process for `tests/cluster_nats.test.ts`: one cluster node in its own process, of the
 * test's runtime or another. It starts a core on `127.0.0.1:0` that adopts every keyword, joined to
 * the NATS cluster `test` as node `<node>`, prints `listening <port>` once bound, and runs until
 * killed. A message `to <keyword>: <text>` from one of its clients is sent on to that keyword, and
 * `<text>` back to the sender when that failed (`failed: <error>`).
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
for await (const events of core) {
  for (const id of events.clientsHaveDataToRead) {
    for (const message of core.getMessagesFromClient(id)) {
      const match = /^to ([^:]+): (.*)$/s.exec(new TextDecoder().decode(message));
      if (!match) continue;
      core.sendMessageToKeyword(match[1]!, match[2]!).catch((err) => {
        core.sendMessageToClient(id, `failed: ${err}`);
      });
    }
  }
}
