/**
 * `imagemode-oci`: a skopeo-like CLI over `@imagemode/oci-fetch`.
 *
 *   imagemode-oci copy docker://127.0.0.1:5000/os:v1 oci:/tmp/os:v1 --src-tls-verify=false
 *   imagemode-oci inspect docker://127.0.0.1:5000/os:v1 --tls-verify=false [--raw | --config]
 */
import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { type ProgressRenderer, progressRenderer, runCli } from "@imagemode/cli-kit";
import { ImageModeError, readAll } from "@imagemode/core";
import {
  type Credentials,
  copy,
  describeUpdate,
  EMPTY_REGISTRIES_CONF,
  HttpClient,
  hostPlatform,
  lookupCredentials,
  MAX_CONFIG_BYTES,
  type OpenedTransport,
  openTransport,
  parseCredentialsFlag,
  parseImageConfig,
  parseManifest,
  parsePlatform,
  parseRegistriesConf,
  parseTransportReference,
  type RegistriesConf,
  type RegistryOptions,
  type RunHelper,
  selectPlatform,
  type TlsOptions,
} from "@imagemode/oci-fetch";
import { Command, InvalidArgumentError } from "commander";

function bool(v: string): boolean {
  if (v === "true" || v === "1") return true;
  if (v === "false" || v === "0") return false;
  throw new InvalidArgumentError("expected true or false");
}

const readText = (p: string) =>
  readFile(p, "utf8").catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT" || e.code === "ENOTDIR") return undefined;
    throw e;
  });

const runHelper: RunHelper = (program, args, stdin) =>
  new Promise((resolve) => {
    const child = spawn(program, args, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => (stdout += c));
    child.stderr.on("data", (c) => (stderr += c));
    child.on("error", (e) => resolve({ status: 127, stdout: "", stderr: e.message }));
    child.on("close", (status) => resolve({ status: status ?? 1, stdout, stderr }));
    child.stdin.end(stdin);
  });

async function certDirCa(dir: string | undefined): Promise<TlsOptions | undefined> {
  if (!dir) return undefined;
  const files = (await readdir(dir)).filter((f) => f.endsWith(".crt"));
  if (files.length === 0) throw new ImageModeError("INVALID_ARGUMENT", `no *.crt file in ${dir}`);
  return { ca: await Promise.all(files.map((f) => readFile(join(dir, f), "utf8"))) };
}

async function registriesConf(file: string | undefined): Promise<RegistriesConf> {
  const path = file ?? process.env.CONTAINERS_REGISTRIES_CONF ?? "/etc/containers/registries.conf";
  const text = await readText(path);
  if (text === undefined) {
    if (file) throw new ImageModeError("NOT_FOUND", `registries.conf ${file} not found`);
    return EMPTY_REGISTRIES_CONF;
  }
  try {
    return parseRegistriesConf(text);
  } catch (e) {
    // a v1 system file should not break pulls that do not need it
    if (!file && (e as ImageModeError).code === "UNSUPPORTED") return EMPTY_REGISTRIES_CONF;
    throw e;
  }
}

interface SideOptions {
  tlsVerify: boolean;
  creds?: string;
  certDir?: string;
}

async function registryOptions(
  side: SideOptions,
  http: HttpClient,
  authfile: string | undefined,
): Promise<RegistryOptions> {
  const explicit: Credentials | undefined = side.creds
    ? parseCredentialsFlag(side.creds)
    : undefined;
  const tls = await certDirCa(side.certDir);
  return {
    http,
    ...(tls ? { tls } : {}),
    ...(side.tlsVerify ? {} : { insecure: true }),
    credentials: (registry, repository) =>
      lookupCredentials(registry, repository, {
        ...(explicit ? { credentials: explicit } : {}),
        ...(authfile ? { authFile: authfile } : {}),
        env: process.env,
        homeDir: homedir(),
        ostreeRoot: "/",
        readFile: readText,
        runHelper,
      }),
  };
}

function progressListener(mode: string, json: boolean): ProgressRenderer {
  if (mode === "none") return progressRenderer("none", process.stderr, { line: () => undefined });
  if (mode === "jsonl") return progressRenderer("jsonl", process.stderr, { jsonlThrottleMs: 100 });
  if (mode !== "bar")
    throw new ImageModeError(
      "INVALID_ARGUMENT",
      `--progress must be bar, jsonl or none, not ${mode}`,
    );
  if (!process.stderr.isTTY && json)
    return progressRenderer("none", process.stderr, { line: () => undefined });
  return progressRenderer("bar", process.stderr, {
    bar: {
      format: "{name} [{bar}] {percentage}% | {value}/{total} bytes",
      options: {
        clearOnComplete: false,
        noTTYOutput: !process.stderr.isTTY,
        notTTYSchedule: 1000,
      },
      // one bar per blob copied; warnings of every task above the bars
      key: (e) => (e.task === "oci.fetch.blob" && e.id ? e.id : undefined),
      start: (e) => ({ name: `Copying blob ${(e.id ?? "").slice(7, 19)}` }),
    },
  });
}

async function withTransport<T>(
  ref: string,
  o: { registry: RegistryOptions; conf: RegistriesConf; create?: boolean },
  f: (t: OpenedTransport) => Promise<T>,
): Promise<T> {
  const parsed = parseTransportReference(ref);
  // a temp dir only for unpacking an oci-archive (so a killed copy leaves none behind otherwise)
  const tempDir =
    parsed.transport === "oci-archive"
      ? await mkdtemp(join(tmpdir(), "imagemode-oci-"))
      : undefined;
  try {
    const t = await openTransport(parsed, {
      registry: o.registry,
      registriesConf: o.conf,
      ...(tempDir ? { tempDir } : {}),
      ...(o.create ? { create: true } : {}),
    });
    try {
      return await f(t);
    } finally {
      await t.close();
    }
  } finally {
    if (tempDir) await rm(tempDir, { recursive: true, force: true });
  }
}

async function main(argv: string[]): Promise<void> {
  const ac = new AbortController();
  process.once("SIGINT", () => ac.abort(new Error("interrupted")));
  process.once("SIGTERM", () => ac.abort(new Error("terminated")));
  let json = false;
  const program = new Command("imagemode-oci")
    .description("Copy and inspect container images (skopeo-like), over @imagemode/oci-fetch")
    .showHelpAfterError()
    .exitOverride();

  program
    .command("copy")
    .description("copy an image: docker://REF, oci:DIR[:TAG], oci-archive:FILE[:TAG] (source only)")
    .argument("<src>")
    .argument("<dst>")
    .option(
      "--src-tls-verify <bool>",
      "require HTTPS and verify certificates for the source",
      bool,
      true,
    )
    .option(
      "--dest-tls-verify <bool>",
      "require HTTPS and verify certificates for the destination",
      bool,
      true,
    )
    .option("--src-creds <user:pass>", "credentials for the source registry")
    .option("--dest-creds <user:pass>", "credentials for the destination registry")
    .option("--src-cert-dir <dir>", "CA certificates (*.crt) for the source registry")
    .option("--dest-cert-dir <dir>", "CA certificates (*.crt) for the destination registry")
    .option("--authfile <file>", "auth file (containers-auth.json format)")
    .option("--registries-conf <file>", "registries.conf (v2) for mirrors and insecure registries")
    .option(
      "--platform <os/arch[/variant]>",
      "platform to pick from a multi-arch image (default: this host's)",
    )
    .option("--multi-arch <mode>", "system (one platform) or all (the whole index)", "system")
    .option("--concurrency <n>", "blobs copied at once", (v) => Number.parseInt(v, 10), 4)
    .option("--progress <mode>", "bar, jsonl or none", "bar")
    .option("--json", "print the result as JSON")
    .action(async (src: string, dst: string, o) => {
      json = o.json === true;
      const http = new HttpClient();
      const conf = await registriesConf(o.registriesConf);
      const progress = progressListener(o.progress, json);
      try {
        const srcReg = await registryOptions(
          { tlsVerify: o.srcTlsVerify, creds: o.srcCreds, certDir: o.srcCertDir },
          http,
          o.authfile,
        );
        const dstReg = await registryOptions(
          { tlsVerify: o.destTlsVerify, creds: o.destCreds, certDir: o.destCertDir },
          http,
          o.authfile,
        );
        if (o.multiArch !== "system" && o.multiArch !== "all")
          throw new ImageModeError("INVALID_ARGUMENT", "--multi-arch must be system or all");
        const platform =
          o.multiArch === "all"
            ? ("all" as const)
            : o.platform
              ? parsePlatform(o.platform)
              : hostPlatform();
        const result = await withTransport(src, { registry: srcReg, conf }, (s) =>
          withTransport(dst, { registry: dstReg, conf, create: true }, (d) =>
            copy(
              s.target,
              d.target,
              s.reference,
              d.reference === "" && !dst.startsWith("docker://") ? undefined : d.reference,
              {
                platform,
                concurrency: o.concurrency,
                signal: ac.signal,
                ...(progress.listener ? { onProgress: progress.listener } : {}),
              },
            ),
          ),
        );
        progress.stop();
        if (json) {
          process.stdout.write(
            `${JSON.stringify({ digest: result.digest, present: result.present, needed: result.needed, bytesNeeded: result.bytesNeeded, bytesCopied: result.bytesCopied })}\n`,
          );
        } else {
          process.stdout.write(
            `${describeUpdate(result)}\nWriting manifest to image destination\n${result.digest}\n`,
          );
        }
      } finally {
        progress.stop();
        await http.close();
      }
    });

  program
    .command("inspect")
    .description("show an image's metadata, like skopeo inspect")
    .argument("<ref>")
    .option("--raw", "print the manifest (or index) as stored")
    .option("--config", "print the image config")
    .option("--tls-verify <bool>", "require HTTPS and verify certificates", bool, true)
    .option("--creds <user:pass>", "registry credentials")
    .option("--cert-dir <dir>", "CA certificates (*.crt)")
    .option("--authfile <file>", "auth file")
    .option("--registries-conf <file>", "registries.conf (v2)")
    .option(
      "--platform <os/arch[/variant]>",
      "platform to pick from a multi-arch image (default: this host's)",
    )
    .action(async (ref: string, o) => {
      const http = new HttpClient();
      const conf = await registriesConf(o.registriesConf);
      try {
        const reg = await registryOptions(
          { tlsVerify: o.tlsVerify, creds: o.creds, certDir: o.certDir },
          http,
          o.authfile,
        );
        await withTransport(ref, { registry: reg, conf }, async (t) => {
          const opts = { signal: ac.signal };
          const fetchBytes = async (d: Parameters<typeof t.target.fetch>[0], limit: number) =>
            readAll(await t.target.fetch(d, opts), limit, opts);
          let desc = await t.target.resolve(t.reference, opts);
          let bytes = await fetchBytes(desc, 4 << 20);
          if (o.raw) {
            process.stdout.write(Buffer.from(bytes));
            return;
          }
          let m = parseManifest(bytes, desc.mediaType);
          if (m.kind === "index") {
            desc = selectPlatform(m, o.platform ? parsePlatform(o.platform) : hostPlatform());
            bytes = await fetchBytes(desc, 4 << 20);
            m = parseManifest(bytes, desc.mediaType);
          }
          if (m.kind !== "manifest") throw new ImageModeError("UNSUPPORTED", "nested index");
          const configBytes = await fetchBytes(m.config, MAX_CONFIG_BYTES);
          if (o.config) {
            process.stdout.write(
              `${JSON.stringify(JSON.parse(Buffer.from(configBytes).toString("utf8")), null, 4)}\n`,
            );
            return;
          }
          const cfg = parseImageConfig(configBytes);
          const inner = (cfg.config ?? {}) as { Labels?: Record<string, string>; Env?: string[] };
          const parsed = parseTransportReference(ref);
          const out = {
            Name:
              parsed.transport === "docker"
                ? `${parsed.image.registry}/${parsed.image.repository}`
                : "",
            Digest: desc.digest,
            Created: cfg.created,
            Architecture: cfg.architecture,
            Os: cfg.os,
            ...(cfg.variant ? { Variant: cfg.variant } : {}),
            Labels: inner.Labels ?? null,
            Layers: m.layers.map((l) => l.digest),
            LayersData: m.layers.map((l) => ({
              MIMEType: l.mediaType,
              Digest: l.digest,
              Size: l.size,
              Annotations: l.annotations ?? null,
            })),
            Env: inner.Env ?? null,
          };
          process.stdout.write(`${JSON.stringify(out, null, 4)}\n`);
        });
      } finally {
        await http.close();
      }
    });

  process.exitCode = await runCli({
    name: "imagemode-oci",
    op: "oci.cli",
    build: () => program,
    argv,
    from: "node",
    json: () => json,
    errors: { indent: 0 },
  });
}

await main(process.argv);
