/**
 * HAProxy for the tests: why it is skipped where it is missing, and a `mode tcp` round-robin
 * configuration with PROXY protocol v2 towards each backend.
 *
 * @module
 */
import { missingTool } from "./_helpers.ts";

/** Why the HAProxy tests are skipped, with the install command; `undefined` when `haproxy` runs. */
export const noHaproxyReason: string | undefined = missingTool("haproxy", "-v", "apt-get install -y haproxy");

/**
 * A configuration balancing `127.0.0.1:<frontend>` round robin over `servers` (each sent a PROXY v2
 * header, plus the server line's own `options`, such as health checks).
 */
export function haproxyConfig(
  frontend: number,
  servers: readonly { name: string; port: number; options?: string }[],
): string {
  return [
    "global",
    "  maxconn 256",
    "defaults",
    "  mode tcp",
    "  timeout connect 2s",
    "  timeout client 30s",
    "  timeout server 30s",
    "frontend asockio",
    `  bind 127.0.0.1:${frontend}`,
    "  default_backend cores",
    "backend cores",
    "  balance roundrobin",
    ...servers.map(({ name, port, options }) =>
      `  server ${name} 127.0.0.1:${port} send-proxy-v2${options ? ` ${options}` : ""}`
    ),
    "",
  ].join("\n");
}
