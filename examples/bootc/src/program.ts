/**
 * imagemode-bootc: a bootc-like CLI over @imagemode/deploy-manager, on a sysroot directory.
 *
 *   imagemode-bootc --sysroot /mnt install --image oci:/srv/layout:latest --karg root=LABEL=root
 *   imagemode-bootc --sysroot /mnt status --format json
 *   imagemode-bootc --sysroot /mnt upgrade --check
 *   imagemode-bootc --sysroot /mnt upgrade --apply
 *   imagemode-bootc --sysroot /mnt switch docker://quay.io/org/os:42 --tls-verify=false
 *   imagemode-bootc --sysroot /mnt rollback | pin 1 | unpin 1 | undeploy 1 | cleanup
 *   imagemode-bootc --sysroot /mnt kargs --append quiet --delete rhgb
 */
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { type ProgressRenderer, progressRenderer, runCli, warningLine } from "@imagemode/cli-kit";
import { ImageModeError, invalidArgument, notFound } from "@imagemode/core";
import {
  applyWritePlan,
  type BootedSpec,
  cleanupSysroot,
  finalizeStaged,
  hostStatusToJson,
  hostStatusToYaml,
  type ImageReference,
  imageReferenceFromUser,
  installToSysroot,
  openSysroot,
  openSysrootRepo,
  planSetKernelArgs,
  renderHostStatus,
  rollback,
  type Sysroot,
  setPinned,
  switchImage,
  sysrootHostStatus,
  transportString,
  type UpgradeResult,
  undeploy,
  upgrade,
  upgradeBase,
  userKernelArgs,
} from "@imagemode/deploy-manager";
import { openTransport, parseTransportReference } from "@imagemode/oci-fetch";
import { Command, Option } from "commander";

interface Global {
  sysroot: string;
  json?: boolean;
  progress?: "bar" | "jsonl" | "none";
  bootedRoot?: string;
  cmdline?: string;
}

interface RegistryFlags {
  tlsVerify: boolean;
  certDir?: string;
  allowNonusr?: boolean;
}

const out = (s: string) => process.stdout.write(s);

const run = promisify(execFile);

/** `chattr +i` / `-i` on a deployment root, as ostree does; file systems without it are skipped. */
const immutable = {
  setImmutable: async (path: string) => {
    await run("chattr", ["+i", path]).catch(() => undefined);
  },
  clearImmutable: async (path: string) => {
    await run("chattr", ["-i", path]).catch(() => undefined);
  },
};

function bool(v: string): boolean {
  if (v === "true" || v === "1" || v === "yes") return true;
  if (v === "false" || v === "0" || v === "no") return false;
  throw invalidArgument(`expected true or false, got ${v}`);
}

function index(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw invalidArgument(`expected an index, got ${v}`);
  return n;
}

function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

function globals(cmd: Command): Global {
  return cmd.optsWithGlobals() as Global;
}

function progressListener(g: Global): ProgressRenderer {
  const mode = g.progress ?? (process.stderr.isTTY && !g.json ? "bar" : "none");
  return progressRenderer(mode, process.stderr, {
    bar: {
      options: { noTTYOutput: !process.stderr.isTTY },
      log: (e) => (e.type === "step" && e.description ? e.description : warningLine(e)),
    },
  });
}

/** How the booted deployment is found: `--booted-root`, `--cmdline FILE`, or (sysroot `/`) `/` and `/proc/cmdline`. */
async function bootedSpec(g: Global): Promise<BootedSpec | undefined> {
  if (g.bootedRoot) return { root: g.bootedRoot };
  if (g.cmdline) return { cmdline: await readFile(g.cmdline, "utf8") };
  if (g.sysroot === "/") {
    const cmdline = await readFile("/proc/cmdline", "utf8").catch(() => "");
    if (/(^|\s)ostree=/.test(cmdline)) return { root: "/" };
  }
  return undefined;
}

async function open(g: Global): Promise<Sysroot> {
  const booted = await bootedSpec(g);
  const root = g.sysroot === "/" ? "/sysroot" : g.sysroot;
  return openSysroot(root, { ...(booted ? { booted } : {}) });
}

async function openSource(image: ImageReference, flags: RegistryFlags) {
  const ref = parseTransportReference(transportString(image));
  const ca = flags.certDir
    ? await readFile(join(flags.certDir, "ca.crt")).catch(() => undefined)
    : undefined;
  // oci-archive: is unpacked into a temp dir of our own, removed on close
  const tempDir =
    ref.transport === "oci-archive" ? await mkdtemp(join(tmpdir(), "imagemode-bootc-")) : undefined;
  try {
    const opened = await openTransport(ref, {
      registry: { ...(flags.tlsVerify ? {} : { insecure: true }), ...(ca ? { tls: { ca } } : {}) },
      ...(tempDir ? { tempDir } : {}),
    });
    return {
      ...opened,
      reference: opened.reference || "latest",
      close: async () => {
        await opened.close();
        if (tempDir) await rm(tempDir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    if (tempDir) await rm(tempDir, { recursive: true, force: true });
    throw e;
  }
}

function print(g: Global, data: unknown, lines: string[]): void {
  if (g.json) out(`${JSON.stringify(data)}\n`);
  else if (lines.length) out(`${lines.join("\n")}\n`);
}

function registryOptions(cmd: Command): Command {
  return cmd
    .option("--tls-verify <bool>", "require HTTPS and verify certificates (docker://)", bool, true)
    .option("--cert-dir <dir>", "a directory holding ca.crt for the registry (docker://)")
    .option("--allow-nonusr", "keep top-level paths other than usr/etc/var (bin -> usr/bin, …)");
}

export function buildProgram(): Command {
  const program = new Command("imagemode-bootc")
    .description("A bootc-like CLI over @imagemode/deploy-manager")
    .option("--sysroot <dir>", "the sysroot (default /, i.e. /sysroot of the running system)", "/")
    .option("--json", "machine-readable output")
    .option("--booted-root <dir>", "the booted deployment's root (default / when --sysroot is /)")
    .option("--cmdline <file>", "kernel command line whose ostree= names the booted deployment")
    .addOption(new Option("--progress <mode>", "progress output").choices(["bar", "jsonl", "none"]))
    .showHelpAfterError()
    .exitOverride();

  registryOptions(
    program
      .command("install")
      .description("install an image onto an empty directory as a fresh sysroot (to-filesystem)")
      .requiredOption(
        "--image <ref>",
        "image: docker://…, host/repo:tag, oci:DIR[:TAG], oci-archive:…",
      )
      .option("--karg <arg>", "kernel argument (repeatable)", collect, [])
      .option("--stateroot <name>", "stateroot name", "default"),
  ).action(
    async (
      o: { image: string; karg: string[]; stateroot: string } & RegistryFlags,
      cmd: Command,
    ) => {
      const g = globals(cmd);
      if (g.sysroot === "/")
        throw invalidArgument("install needs --sysroot DIR (an empty directory)");
      const names = await readdir(g.sysroot).catch(() => null);
      if (!names) throw notFound(`${g.sysroot} does not exist`);
      if (names.some((n) => n !== "lost+found"))
        throw new ImageModeError("CONFLICT", `${g.sysroot} is not empty`, { op: "bootc.install" });
      const image = imageReferenceFromUser(o.image);
      const src = await openSource(image, o);
      const progress = progressListener(g);
      try {
        const r = await installToSysroot(g.sysroot, {
          source: src.target,
          sourceRef: src.reference,
          image,
          stateroot: o.stateroot,
          kargs: o.karg,
          ...(o.allowNonusr ? { allowNonUsr: true } : {}),
          setImmutable: immutable.setImmutable,
          ...(progress.listener ? { onProgress: progress.listener } : {}),
        });
        progress.stop();
        print(g, r, r.messages);
      } finally {
        progress.stop();
        await src.close();
      }
    },
  );

  program
    .command("status")
    .description("show the deployments (bootc's BootcHost document)")
    .addOption(
      new Option("--format <fmt>", "output format")
        .choices(["human", "json", "yaml"])
        .default(undefined),
    )
    .option("--booted", "only the booted deployment")
    .action(async (o: { format?: "human" | "json" | "yaml"; booted?: boolean }, cmd: Command) => {
      const g = globals(cmd);
      const s = await open(g);
      const host = await sysrootHostStatus(s, await openSysrootRepo(s.root));
      if (o.booted) {
        host.status.staged = null;
        host.status.rollback = null;
        host.status.otherDeployments = [];
      }
      const fmt = o.format ?? (g.json ? "json" : process.stdout.isTTY ? "human" : "yaml");
      out(
        fmt === "json"
          ? hostStatusToJson(host)
          : fmt === "yaml"
            ? hostStatusToYaml(host)
            : renderHostStatus(host),
      );
    });

  const update = async (
    g: Global,
    target: ImageReference | null,
    o: { check?: boolean; apply?: boolean } & RegistryFlags,
  ) => {
    const s = await open(g);
    const repo = await openSysrootRepo(s.root);
    const image = target ?? upgradeBase(s)?.origin?.image;
    if (!image) throw invalidArgument("the deployment tracks no image; use switch");
    const src = await openSource(image, o);
    const progress = progressListener(g);
    let r: UpgradeResult;
    try {
      const common = {
        repo,
        ...immutable,
        ...(o.allowNonusr ? { allowNonUsr: true } : {}),
        source: src.target,
        sourceRef: src.reference,
        ...(o.check ? { check: true } : {}),
        ...(progress.listener ? { onProgress: progress.listener } : {}),
      };
      r = target ? await switchImage(s, target, common) : await upgrade(s, common);
    } finally {
      progress.stop();
      await src.close();
    }
    const lines = [...r.messages];
    if (o.apply && r.outcome === "queued") {
      const f = await finalizeStaged(await open(g), { repo, ...immutable });
      lines.push(...(f?.messages ?? []), "Finalized; reboot to boot the new deployment.");
    }
    print(g, r, lines);
  };

  for (const name of ["upgrade", "update"]) {
    registryOptions(
      program
        .command(name)
        .description("download and stage an update of the tracked image")
        .option("--check", "only check for an update (recorded as cachedUpdate)")
        .option("--apply", "finalize the staged update right away"),
    ).action(async (o: { check?: boolean; apply?: boolean } & RegistryFlags, cmd: Command) =>
      update(globals(cmd), null, o),
    );
  }

  registryOptions(
    program
      .command("switch")
      .description("track and stage another image")
      .argument("<ref>")
      .option("--apply", "finalize the staged deployment right away"),
  ).action(async (ref: string, o: { apply?: boolean } & RegistryFlags, cmd: Command) =>
    update(globals(cmd), imageReferenceFromUser(ref), o),
  );

  const simple = (
    name: string,
    description: string,
    run: (s: Sysroot, g: Global, n?: number) => Promise<string[]>,
    withIndex = false,
  ) => {
    const c = program.command(name).description(description);
    if (withIndex) c.argument("<index>", "deployment index (as in status)", index);
    c.action(async (...args: unknown[]) => {
      const cmd = args[args.length - 1] as Command;
      const g = globals(cmd);
      const s = await open(g);
      const lines = await run(s, g, withIndex ? (args[0] as number) : undefined);
      print(g, { messages: lines }, lines);
    });
  };
  const repoOf = async (s: Sysroot) => openSysrootRepo(s.root);

  simple("rollback", "boot the rollback deployment next (again: revert)", async (s) =>
    rollback(s, { repo: await repoOf(s), ...immutable }),
  );
  simple(
    "pin",
    "keep a deployment from being garbage-collected",
    async (s, _g, n) => [await setPinned(s, n as number, true)],
    true,
  );
  simple(
    "unpin",
    "allow a pinned deployment to be garbage-collected",
    async (s, _g, n) => [await setPinned(s, n as number, false)],
    true,
  );
  simple(
    "undeploy",
    "remove a deployment",
    async (s, _g, n) => undeploy(s, n as number, { repo: await repoOf(s), ...immutable }),
    true,
  );
  simple(
    "cleanup",
    "remove unreferenced deployments, boot files and repository objects",
    async (s, g) => {
      const booted = await bootedSpec(g);
      const r = await cleanupSysroot(s.root, {
        repo: await repoOf(s),
        runDir: s.runDir,
        ...(booted ? { booted } : {}),
      });
      return [...r.removed.map((p) => `Removed ${p}`), `Freed objects: ${r.prunedBytes} bytes`];
    },
  );
  simple(
    "finalize-staged",
    "finalize a staged deployment now (/etc merge, boot swap)",
    async (s) => {
      const r = await finalizeStaged(s, { repo: await repoOf(s), ...immutable });
      return r ? r.messages : ["No staged deployment."];
    },
  );

  program
    .command("kargs")
    .description("show or edit the default deployment's kernel arguments")
    .option("--append <arg>", "append an argument (repeatable)", collect, [])
    .option("--delete <arg>", "delete an argument, KEY or KEY=VALUE (repeatable)", collect, [])
    .action(async (o: { append: string[]; delete: string[] }, cmd: Command) => {
      const g = globals(cmd);
      const s = await open(g);
      if (o.append.length || o.delete.length) {
        const plan = planSetKernelArgs(s, { append: o.append, delete: o.delete });
        await applyWritePlan(plan, { repo: await repoOf(s) });
      }
      const d = (await open(g)).deployments.find((x) => !x.staged);
      const args = d ? userKernelArgs(d) : [];
      print(g, { kargs: args }, [args.join(" ")]);
    });

  return program;
}

/** Runs the CLI with `argv` (without node and script); returns the exit status. */
export async function main(argv: string[]): Promise<number> {
  return runCli({
    name: "imagemode-bootc",
    build: buildProgram,
    argv,
    errors: { json: "stderr", indent: 0, label: "error", textWithJson: false },
  });
}
