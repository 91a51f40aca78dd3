/**
 * Test-time TLS material: a CA, a server certificate for 127.0.0.1/localhost, one for another name,
 * a client certificate, and a client certificate from a second, untrusted CA, all made by `openssl`
 * in a fresh temp dir.
 * No private key is ever committed: each run makes its own and removes it.
 *
 * @module
 */
import { execFile, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { tempDir } from "./_helpers.ts";

/** The PEM texts the TLS tests use. */
export interface TestCerts {
  /** The CA that signed the server and client certificates. */
  readonly caCert: string;
  /** Server certificate (SAN IP:127.0.0.1, IP:::1, DNS:localhost), signed by the CA. */
  readonly serverCert: string;
  /** The server certificate's private key. */
  readonly serverKey: string;
  /** A server certificate signed by the CA for `elsewhere.invalid` only (not for 127.0.0.1). */
  readonly elsewhereCert: string;
  /** Its private key. */
  readonly elsewhereKey: string;
  /** Client certificate (CN=asockio test client), signed by the CA. */
  readonly clientCert: string;
  /** The client certificate's private key. */
  readonly clientKey: string;
  /** A client certificate signed by another CA that nobody trusts. */
  readonly rogueClientCert: string;
  /** The rogue client certificate's private key. */
  readonly rogueClientKey: string;
}

const OPENSSL_CONFIG = `[req]
distinguished_name = dn
prompt = no
[dn]
CN = asockio test
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,IP:::1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[elsewhere_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:elsewhere.invalid
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`;

function findOpenssl(): string | undefined {
  for (const candidate of ["/usr/bin/openssl", "/usr/local/bin/openssl", "/opt/homebrew/bin/openssl"]) {
    if (existsSync(candidate)) return candidate;
  }
  try {
    const probe = spawnSync("openssl", ["version"], { stdio: "ignore", timeout: 5000 });
    return probe.status === 0 ? "openssl" : undefined;
  } catch {
    return undefined;
  }
}

const OPENSSL = findOpenssl();

/**
 * Why the TLS tests cannot run here, or `undefined` when they can (that is, `openssl` exists).
 */
export const noOpensslReason: string | undefined = OPENSSL === undefined
  ? "openssl is not installed, so no test certificates can be made"
  : undefined;

function openssl(args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(OPENSSL!, args, { cwd, timeout: 20_000 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`Cannot run openssl ${args[0]}: ${String(stderr).trim() || err.message}`));
      else resolve();
    });
  });
}

async function makeCa(dir: string, name: string, cn: string): Promise<void> {
  await openssl(
    ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", `${name}.key`],
    dir,
  );
  await openssl([
    "req",
    "-new",
    "-x509",
    "-config",
    "openssl.cnf",
    "-extensions",
    "ca_ext",
    "-key",
    `${name}.key`,
    "-subj",
    `/CN=${cn}`,
    "-days",
    "2",
    "-out",
    `${name}.crt`,
  ], dir);
}

let nextSerial = 1;

async function makeLeaf(dir: string, name: string, cn: string, ca: string, ext: string): Promise<void> {
  await openssl(
    ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", `${name}.key`],
    dir,
  );
  await openssl(
    [
      "req",
      "-new",
      "-config",
      "openssl.cnf",
      "-key",
      `${name}.key`,
      "-subj",
      `/CN=${cn}`,
      "-out",
      `${name}.csr`,
    ],
    dir,
  );
  await openssl([
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    `${ca}.crt`,
    "-CAkey",
    `${ca}.key`,
    "-set_serial",
    String(Date.now() * 100 + nextSerial++),
    "-days",
    "2",
    "-extfile",
    "openssl.cnf",
    "-extensions",
    ext,
    "-out",
    `${name}.crt`,
  ], dir);
}

async function generate(): Promise<TestCerts> {
  // The keys live on only in memory, for this process: the directory goes on return.
  await using tmp = await tempDir("asockio-certs-");
  const dir = tmp.path;
  await writeFile(join(dir, "openssl.cnf"), OPENSSL_CONFIG);
  await makeCa(dir, "ca", "asockio test CA");
  await makeLeaf(dir, "server", "localhost", "ca", "server_ext");
  await makeLeaf(dir, "elsewhere", "elsewhere.invalid", "ca", "elsewhere_ext");
  await makeLeaf(dir, "client", "asockio test client", "ca", "client_ext");
  await makeCa(dir, "rogue-ca", "asockio rogue CA");
  await makeLeaf(dir, "rogue-client", "asockio rogue client", "rogue-ca", "client_ext");
  const read = (file: string) => readFile(join(dir, file), "utf8");
  return {
    caCert: await read("ca.crt"),
    serverCert: await read("server.crt"),
    serverKey: await read("server.key"),
    elsewhereCert: await read("elsewhere.crt"),
    elsewhereKey: await read("elsewhere.key"),
    clientCert: await read("client.crt"),
    clientKey: await read("client.key"),
    rogueClientCert: await read("rogue-client.crt"),
    rogueClientKey: await read("rogue-client.key"),
  };
}

let made: Promise<TestCerts> | undefined;

/**
 * The test certificates, made once per process on first use. Needs `openssl` (see
 * {@linkcode noOpensslReason}).
 */
export function testCerts(): Promise<TestCerts> {
  if (OPENSSL === undefined) return Promise.reject(new Error(noOpensslReason));
  made ??= generate();
  return made;
}
