/**
 * `imagemode-build`: bootc-image-builder's command line, unprivileged.
 *
 *   imagemode-build --type qcow2 --rootfs ext4 --config config.toml --output out docker://host/os:v1
 */
import { type ProgressRenderer, progressRenderer, runCli, warningLine } from "@imagemode/cli-kit";
import { formatBytes, invalidArgument, type ProgressEvent } from "@imagemode/core";
import { formatLayout, parseSize } from "@imagemode/diskimage";
import { Command, Option } from "commander";
import { type BuildResult, buildImage, IMAGE_TYPES, type ImageType } from "./build.js";

/** Where the CLI writes (injectable for tests). */
export interface Io {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown; isTTY?: boolean };
  env?: Record<string, string | undefined>;
}

interface Flags {
  type: string[];
  rootfs: "ext4" | "xfs";
  config?: string;
  output: string;
  chown?: string;
  karg: string[];
  size?: string;
  bootloader: "grub" | "systemd-boot";
  progress: "auto" | "bar" | "jsonl" | "none";
  json?: boolean;
  tlsVerify: boolean;
  authfile?: string;
  certDir?: string;
  cache?: string;
  targetArch: string;
}

function renderer(io: Io, mode: Flags["progress"]): ProgressRenderer {
  if (mode === "none") return progressRenderer("none", io.stderr, { line: () => undefined });
  if (mode === "jsonl") return progressRenderer("jsonl", io.stderr);
  const line = (e: ProgressEvent) =>
    e.type === "step" ? `[${e.step}/${e.steps ?? "?"}] ${e.description}` : warningLine(e);
  if (mode === "auto" && !io.stderr.isTTY) return progressRenderer("none", io.stderr, { line });
  return progressRenderer("bar", io.stderr, {
    bar: {
      format: "{task} [{bar}] {percentage}%",
      options: { clearOnComplete: true },
      key: (e) => e.task,
      start: (e) => (e.total !== undefined ? { task: e.task.padEnd(22).slice(0, 22) } : undefined),
      removeOnDone: true,
      log: line,
    },
  });
}

function summary(r: BuildResult, ms: number): string {
  const lines = [
    `Image: ${r.image}`,
    `Digest: ${r.manifestDigest}`,
    `Layers: ${r.layers.present} already cached, ${r.layers.needed} fetched (${formatBytes(r.layers.bytesNeeded)})`,
    `Deployment: /${r.deployment}`,
    `Kernel arguments: ${r.kargs}`,
    ...(r.users.length ? [`Users: ${r.users.join(", ")}`] : []),
    "",
    formatLayout(r.layout),
    "",
    ...r.outputs.map((o) => `Wrote ${o.path} (${o.format}, ${formatBytes(o.fileSize)})`),
    `Stages: ${r.stages.map((s) => `${s.stage} ${(s.ms / 1000).toFixed(1)}s`).join(", ")}`,
    `Build complete in ${(ms / 1000).toFixed(1)}s`,
  ];
  return `${lines.join("\n")}\n`;
}

/** Builds the commander program. */
export function buildProgram(io: Io, result: { code: number }): Command {
  const bool = (v: string) => v !== "false" && v !== "0";
  return new Command("imagemode-build")
    .description(
      "convert a bootc container image into a bootable disk image (bootc-image-builder compatible), unprivileged",
    )
    .argument(
      "<image>",
      "docker://REF, a bare registry reference, oci:DIR[:TAG] or oci-archive:FILE",
    )
    .addOption(
      new Option("--type <type>", "image type to build (repeatable)")
        .choices(Object.keys(IMAGE_TYPES))
        .argParser((v: string, acc: string[] | undefined) => {
          if (!(v in IMAGE_TYPES)) throw invalidArgument(`unknown --type ${v}`);
          return [...(acc ?? []), v];
        }),
    )
    .addOption(
      new Option("--rootfs <fs>", "root filesystem").choices(["ext4", "xfs"]).default("ext4"),
    )
    .option("--config <file>", "blueprint (config.toml or config.json)")
    .option("--output <dir>", "output directory", ".")
    .option("--chown <uid:gid>", "owner of the output files")
    .option(
      "--karg <arg>",
      "extra kernel argument (repeatable)",
      (v: string, a: string[]) => [...a, v],
      [],
    )
    .option("--size <size>", "disk size (e.g. 10GiB; default: what the image needs)")
    .addOption(
      new Option("--bootloader <name>", "bootloader")
        .choices(["grub", "systemd-boot"])
        .default("grub"),
    )
    .addOption(
      new Option("--progress <mode>", "progress output")
        .choices(["auto", "bar", "jsonl", "none"])
        .default("auto"),
    )
    .option("--json", "print the result as JSON")
    .option("--tls-verify <bool>", "require HTTPS and verify certificates", bool, true)
    .option("--authfile <file>", "registry auth file (containers-auth.json)")
    .option("--cert-dir <dir>", "directory with ca.crt for the registry")
    .option("--cache <dir>", "OCI layout cache (default $XDG_CACHE_HOME/imagemode)")
    .option("--target-arch <arch>", "architecture to build for", "x86_64")
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .action(async (image: string, f: Flags) => {
      let chown: { uid: number; gid: number } | undefined;
      if (f.chown) {
        const m = /^(\d+):(\d+)$/.exec(f.chown);
        if (!m) throw invalidArgument("--chown must be UID:GID");
        chown = { uid: Number(m[1]), gid: Number(m[2]) };
      }
      const r = renderer(io, f.json && f.progress === "auto" ? "none" : f.progress);
      const started = Date.now();
      try {
        const res = await buildImage({
          imageRef: image,
          types: (f.type?.length ? f.type : ["qcow2"]) as ImageType[],
          output: f.output,
          rootfs: f.rootfs,
          kargs: f.karg,
          bootloader: f.bootloader,
          tlsVerify: f.tlsVerify,
          targetArch: f.targetArch,
          ...(f.config ? { config: f.config } : {}),
          ...(f.size ? { size: parseSize(f.size) } : {}),
          ...(f.authfile ? { authfile: f.authfile } : {}),
          ...(f.certDir ? { certDir: f.certDir } : {}),
          ...(f.cache ? { cache: f.cache } : {}),
          ...(chown ? { chown } : {}),
          ...(io.env ? { env: io.env } : {}),
          onProgress: r.listener,
        });
        r.stop();
        io.stdout.write(
          f.json
            ? `${JSON.stringify({ ...res, durationMs: Date.now() - started }, null, 2)}\n`
            : summary(res, Date.now() - started),
        );
      } finally {
        r.stop();
      }
      result.code = 0;
    });
}

/** Runs the CLI; resolves the exit status (errors printed, mapped with `exitCodeFor`). */
export async function main(
  argv: string[],
  io: Io = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  const result = { code: 0 };
  return runCli({
    name: "imagemode-build",
    op: "build",
    build: () => buildProgram(io, result),
    argv,
    io,
    status: () => result.code,
  });
}
