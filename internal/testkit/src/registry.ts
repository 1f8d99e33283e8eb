import { once } from "node:events";
import { closeSync, openSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import { createServer } from "node:net";
import { join } from "node:path";
import { ImageModeError } from "@imagemode/core";
import { hashSync } from "bcryptjs";
import { spawnGuarded, stopGuarded } from "./internal/children.js";
import { run } from "./internal/exec.js";
import { tempDir } from "./temp-dir.js";
import { requireTool } from "./tools.js";

/** How {@link startRegistry} configures the registry. */
export interface RegistryOptions {
  /** `"htpasswd"`: HTTP basic auth with a generated user and password (bcrypt). Default `"none"`. */
  auth?: "none" | "htpasswd";
  /** Serve HTTPS with a certificate signed by a private CA made for this registry. Default `false`. */
  tls?: boolean;
}

/** A running CNCF distribution registry (Debian `docker-registry`) on 127.0.0.1. */
export interface Registry {
  /** `127.0.0.1:PORT`. */
  host: string;
  /** `http://host` or `https://host`. */
  url: string;
  tls: boolean;
  /** PEM file of the private CA that signed the server certificate (TLS only). */
  caFile?: string;
  /** A directory holding `ca.crt`, for `skopeo --cert-dir` / `--src-cert-dir` / `--dest-cert-dir` (TLS only). */
  certDir?: string;
  /** Basic-auth user (htpasswd mode only). */
  username?: string;
  /** Basic-auth password (htpasswd mode only). */
  password?: string;
  /** The registry's filesystem storage root. */
  storageDir: string;
  /** The registry's own log file. */
  logFile: string;
  /** Stops the registry, waits for it to exit and removes its temp dir. Safe to call twice. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 15_000;

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  server.close();
  await once(server, "close");
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

/** GET /v2/ once; resolves to the HTTP status, or 0 when nothing answers yet. */
export function probeV2(
  url: string,
  ca?: string | Buffer,
  auth?: { username: string; password: string },
): Promise<number> {
  return new Promise((resolve) => {
    const target = new URL("/v2/", url);
    const headers: Record<string, string> = {};
    if (auth)
      headers.authorization = `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString("base64")}`;
    const onResponse = (res: http.IncomingMessage) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    };
    const req =
      target.protocol === "https:"
        ? https.get(target, { ca, agent: false, headers }, onResponse)
        : http.get(target, { agent: false, headers }, onResponse);
    req.setTimeout(2000, () => req.destroy());
    req.on("error", () => resolve(0));
  });
}

async function makeCertificates(
  dir: string,
): Promise<{ caFile: string; certFile: string; keyFile: string; certDir: string }> {
  requireTool("openssl");
  await mkdir(dir, { recursive: true });
  const caKey = join(dir, "ca.key");
  const caFile = join(dir, "ca.crt");
  const keyFile = join(dir, "server.key");
  const csr = join(dir, "server.csr");
  const certFile = join(dir, "server.crt");
  const ext = join(dir, "server.ext");
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await run("openssl", [
    "req",
    "-x509",
    ...ec,
    "-sha256",
    "-days",
    "30",
    "-keyout",
    caKey,
    "-out",
    caFile,
    "-subj",
    "/CN=imagemode testkit CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  await run("openssl", ["req", ...ec, "-keyout", keyFile, "-out", csr, "-subj", "/CN=127.0.0.1"]);
  // Go ignores the CN: the SAN is what makes 127.0.0.1 valid.
  await writeFile(
    ext,
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
  );
  await run("openssl", [
    "x509",
    "-req",
    "-sha256",
    "-days",
    "30",
    "-in",
    csr,
    "-CA",
    caFile,
    "-CAkey",
    caKey,
    "-CAcreateserial",
    "-out",
    certFile,
    "-extfile",
    ext,
  ]);
  const certDir = join(dir, "certs.d");
  await mkdir(certDir);
  await writeFile(join(certDir, "ca.crt"), await readFile(caFile));
  return { caFile, certFile, keyFile, certDir };
}

function configYaml(o: {
  addr: string;
  storage: string;
  tls?: { cert: string; key: string };
  htpasswd?: string;
}): string {
  const lines = [
    "version: 0.1",
    "log:",
    "  level: info",
    "  accesslog:",
    "    disabled: true",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${o.storage}`,
    "  delete:",
    "    enabled: true",
    "  cache:",
    "    blobdescriptor: inmemory",
    "  maintenance:",
    "    uploadpurging:",
    "      enabled: false",
    "http:",
    `  addr: ${o.addr}`,
    "  secret: imagemode-testkit-not-a-secret",
    "  headers:",
    "    X-Content-Type-Options: [nosniff]",
  ];
  if (o.tls) lines.push("  tls:", `    certificate: ${o.tls.cert}`, `    key: ${o.tls.key}`);
  if (o.htpasswd)
    lines.push("auth:", "  htpasswd:", "    realm: imagemode-testkit", `    path: ${o.htpasswd}`);
  return `${lines.join("\n")}\n`;
}

/**
 * Starts a private registry (Debian `docker-registry` = CNCF distribution 2.8) on
 * 127.0.0.1 at a free port, with its own YAML config and storage in a fresh temp dir, and
 * waits until `GET /v2/` answers. With `auth: "htpasswd"` it requires basic auth (bcrypt
 * cost 4, so auth costs nothing measurable per request); with `tls: true` it serves HTTPS
 * with a certificate (SAN IP:127.0.0.1) signed by a private CA. Always call `stop()`; the
 * process is also killed when the Node process exits.
 *
 * @example
 * ```ts
 * const reg = await startRegistry({ auth: "htpasswd", tls: true });
 * try {
 *   // skopeo copy ... --dest-cert-dir reg.certDir --dest-creds `${reg.username}:${reg.password}`
 * } finally { await reg.stop(); }
 * ```
 */
export async function startRegistry(options: RegistryOptions = {}): Promise<Registry> {
  requireTool("docker-registry");
  const tls = options.tls === true;
  const auth = options.auth ?? "none";
  const dir = await tempDir("imagemode-registry-");
  try {
    const storageDir = join(dir.path, "storage");
    await mkdir(storageDir);
    const certs = tls ? await makeCertificates(join(dir.path, "tls")) : undefined;
    let credentials: { username: string; password: string } | undefined;
    let htpasswd: string | undefined;
    if (auth === "htpasswd") {
      credentials = {
        username: "testkit",
        password: `pw-${Math.random().toString(36).slice(2, 12)}`,
      };
      htpasswd = join(dir.path, "htpasswd");
      // The registry checks bcrypt on every request: cost 4 keeps auth cheap.
      await writeFile(htpasswd, `${credentials.username}:${hashSync(credentials.password, 4)}\n`, {
        mode: 0o600,
      });
    }
    const ca = certs ? await readFile(certs.caFile) : undefined;
    const logFile = join(dir.path, "registry.log");

    // A free port can be taken between probing and binding: retry a few times.
    for (let attempt = 0; attempt < 4; attempt++) {
      const port = await freePort();
      const host = `127.0.0.1:${port}`;
      const url = `${tls ? "https" : "http"}://${host}`;
      const config = join(dir.path, "config.yml");
      await writeFile(
        config,
        configYaml({
          addr: host,
          storage: storageDir,
          ...(certs ? { tls: { cert: certs.certFile, key: certs.keyFile } } : {}),
          ...(htpasswd ? { htpasswd } : {}),
        }),
      );
      const logFd = openSync(logFile, "a");
      const child = spawnGuarded("docker-registry", ["serve", config], {
        stdout: logFd,
        stderr: logFd,
      });
      closeSync(logFd);
      let exited = false;
      child.once("exit", () => {
        exited = true;
      });
      const deadline = Date.now() + READY_TIMEOUT_MS;
      let status = 0;
      while (!exited && Date.now() < deadline) {
        status = await probeV2(url, ca);
        if (status !== 0) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      if (status !== 0 && !exited) {
        let stopped: Promise<void> | undefined;
        return {
          host,
          url,
          tls,
          ...(certs ? { caFile: certs.caFile, certDir: certs.certDir } : {}),
          ...(credentials ?? {}),
          storageDir,
          logFile,
          stop() {
            stopped ??= stopGuarded(child).then(() => dir.cleanup());
            return stopped;
          },
        };
      }
      await stopGuarded(child);
      const log = await readFile(logFile, "utf8").catch(() => "");
      if (!exited || !/address already in use/.test(log)) {
        throw new ImageModeError(
          "HOST",
          `docker-registry did not come up on ${host}:\n${log.split("\n").slice(-20).join("\n")}`,
          {
            op: "testkit.startRegistry",
            data: { host },
          },
        );
      }
    }
    throw new ImageModeError("HOST", "docker-registry found no free port", {
      op: "testkit.startRegistry",
    });
  } catch (err) {
    await dir.cleanup();
    throw err;
  }
}

/**
 * The skopeo flags that reach a testkit registry: TLS verification off for plain HTTP,
 * the CA dir for TLS, and the credentials for htpasswd mode. `role` picks the flag
 * prefix: `"src"` / `"dest"` for `skopeo copy`, `"plain"` for `skopeo inspect` and friends.
 */
export function skopeoFlags(reg: Registry, role: "src" | "dest" | "plain"): string[] {
  const p = role === "plain" ? "--" : `--${role}-`;
  const flags: string[] = [];
  if (reg.tls && reg.certDir) flags.push(`${p}cert-dir`, reg.certDir);
  else flags.push(`${p}tls-verify=false`);
  if (reg.username !== undefined && reg.password !== undefined)
    flags.push(`${p}creds`, `${reg.username}:${reg.password}`);
  return flags;
}
