/**
 * `imagemode-build`: bootc-image-builder's command line, unprivileged.
 *
 *   imagemode-build --type qcow2 --rootfs ext4 --config config.toml --output out docker://host/os:v1
 */
import {
  exitCodeFor,
  formatBytes,
  invalidArgument,
  jsonLinesProgress,
  type ProgressEvent,
  type ProgressListener,
  throttleProgress,
  toImageModeError,
} from "@imagemode/core";
import { formatLayout, parseSize } from "@imagemode/diskimage";
import { MultiBar, Presets, type SingleBar } from "cli-progress";
import { Command, CommanderError, Option } from "commander";
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

function renderer(io: Io, mode: Flags["progress"]): { listener: ProgressListener; stop(): void } {
  if (mode === "none") return { listener: () => {}, stop() {} };
  if (mode === "jsonl") return { listener: jsonLinesProgress(io.stderr), stop() {} };
  if (mode === "auto" && !io.stderr.isTTY)
    return {
      listener: (e: ProgressEvent) => {
        if (e.type === "step") io.stderr.write(`[${e.step}/${e.steps ?? "?"}] ${e.description}\n`);
        else if (e.type === "warn") io.stderr.write(`warning: ${e.message}\n`);
      },
      stop() {},
    };
  const multi = new MultiBar(
    {
      stream: io.stderr as NodeJS.WritableStream,
      format: "{task} [{bar}] {percentage}%",
      hideCursor: true,
      clearOnComplete: true,
    },
    Presets.shades_classic,
  );
  const bars = new Map<string, SingleBar>();
  const listener = throttleProgress((e: ProgressEvent) => {
    if (e.type === "start" && e.total !== undefined)
      bars.set(e.task, multi.create(e.total, 0, { task: e.task.padEnd(22).slice(0, 22) }));
    else if (e.type === "bytes") bars.get(e.task)?.update(e.done);
    else if (e.type === "done") {
      const b = bars.get(e.task);
      if (b) {
        b.update(b.getTotal());
        multi.remove(b);
        bars.delete(e.task);
      }
    } else if (e.type === "warn") multi.log(`warning: ${e.message}\n`);
    else if (e.type === "step") multi.log(`[${e.step}/${e.steps ?? "?"}] ${e.description}\n`);
  }, 100);
  return { listener, stop: () => multi.stop() };
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
  const program = buildProgram(io, result);
  const json = argv.includes("--json");
  try {
    await program.parseAsync(argv, { from: "user" });
    return result.code;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    const err = toImageModeError(e, "build");
    if (json) io.stdout.write(`${JSON.stringify({ error: err.toJSON() }, null, 2)}\n`);
    io.stderr.write(`imagemode-build: ${err.message}\n`);
    return exitCodeFor(err.code);
  }
}
