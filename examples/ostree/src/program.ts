/**
 * The commands of imagemode-ostree: an `ostree`-CLI-like tool over @imagemode/ostree-store. The same arguments
 * given to `ostree` and to this tool produce the same checksums.
 *
 *   imagemode-ostree --repo=repo init --mode=archive
 *   imagemode-ostree --repo=repo commit -b main --tree=dir=rootfs --timestamp=@1700000000 --no-bindings
 *   imagemode-ostree --repo=repo ls -R -C main
 *   imagemode-ostree --repo=repo import-image oci:/srv/layout:v1
 *   imagemode-ostree --repo=repo import-image docker://127.0.0.1:5000/os:v1 --tls-verify=false
 */
import { createReadStream, readdirSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { type ProgressRenderer, progressRenderer, runCli } from "@imagemode/cli-kit";
import { formatBytes, ImageModeError, invalidArgument } from "@imagemode/core";
import { openTransport, parseTransportReference } from "@imagemode/oci-fetch";
import {
  type CommitOptions,
  cat,
  checkout,
  commit,
  diff,
  formatCommitInfo,
  formatDiff,
  formatLsEntry,
  formatMetadataValue,
  fsck,
  importImage,
  log,
  ls,
  OstreeRepo,
  prepareImport,
  prune,
  type RepoMode,
  show,
  tarFileTree,
  Variant,
} from "@imagemode/ostree-store";
import { Command, Option } from "commander";

interface Global {
  repo?: string;
  json?: boolean;
  progress?: "bar" | "jsonl" | "none";
}

const out = (s: string) => process.stdout.write(s);

function bool(v: string): boolean {
  if (v === "true" || v === "1" || v === "yes") return true;
  if (v === "false" || v === "0" || v === "no") return false;
  throw invalidArgument(`expected true or false, got ${v}`);
}

function int(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw invalidArgument(`expected an integer, got ${v}`);
  return n;
}

function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

/** `@EPOCH` (ostree's usual form) or any date `Date.parse` understands. */
export function parseTimestamp(v: string): number {
  if (/^@-?\d+$/.test(v)) return Number(v.slice(1));
  const ms = Date.parse(v);
  if (!Number.isFinite(ms))
    throw invalidArgument(`invalid timestamp ${JSON.stringify(v)} (use @EPOCH or an ISO date)`);
  return Math.floor(ms / 1000);
}

function globals(cmd: Command): Global {
  return cmd.optsWithGlobals() as Global;
}

async function openRepo(cmd: Command, options: { fsync?: boolean } = {}): Promise<OstreeRepo> {
  const g = globals(cmd);
  if (!g.repo) throw invalidArgument("--repo=DIR is required");
  return OstreeRepo.open(g.repo, options.fsync === undefined ? {} : { fsync: options.fsync });
}

function progressListener(g: Global): ProgressRenderer {
  const mode = g.progress ?? (process.stderr.isTTY && !g.json ? "bar" : "none");
  return progressRenderer(mode, process.stderr, {
    bar: {
      format: " {bar} {percentage}% | {name} | {value}/{total} bytes",
      options: { noTTYOutput: !process.stderr.isTTY },
      start: (e) => ({ name: (e.id ?? e.task).slice(0, 19) }),
    },
  });
}

/** The kernel version of `usr/lib/modules/<kver>/vmlinuz` in a directory tree (for --bootable). */
function kernelVersionIn(dir: string): string {
  const mods = join(dir, "usr/lib/modules");
  let names: string[] = [];
  try {
    names = readdirSync(mods);
  } catch {
    // no modules directory
  }
  for (const n of names) {
    try {
      if (readdirSync(join(mods, n)).includes("vmlinuz")) return n;
    } catch {
      // not a directory
    }
  }
  throw invalidArgument(`--bootable: no usr/lib/modules/<kver>/vmlinuz in ${dir}`);
}

export function buildProgram(): Command {
  const program = new Command("imagemode-ostree")
    .description("An ostree-CLI-like tool over @imagemode/ostree-store")
    .option("--repo <dir>", "path to the repository")
    .option("--json", "machine-readable output")
    .addOption(new Option("--progress <mode>", "progress output").choices(["bar", "jsonl", "none"]))
    .showHelpAfterError()
    .exitOverride();

  program
    .command("init")
    .description("initialize a new empty repository")
    .addOption(
      new Option("--mode <mode>", "repository mode")
        .choices(["archive", "archive-z2", "bare", "bare-user", "bare-user-only"])
        .default("bare"),
    )
    .action(async (o: { mode: string }, cmd: Command) => {
      const g = globals(cmd);
      if (!g.repo) throw invalidArgument("--repo=DIR is required");
      const mode = (o.mode === "archive-z2" ? "archive" : o.mode) as RepoMode;
      await OstreeRepo.init(g.repo, { mode });
      if (g.json) out(`${JSON.stringify({ repo: g.repo, mode })}\n`);
    });

  program
    .command("commit")
    .description("commit a new revision")
    .option("-b, --branch <branch>", "branch")
    .option("--tree <spec>", "dir=PATH or tar=TARFILE", collect)
    .option("-s, --subject <subject>", "one line subject")
    .option("-m, --body <body>", "full description")
    .option("--timestamp <ts>", "override the timestamp (@EPOCH or an ISO date)")
    .option("--add-metadata-string <kv>", "add a KEY=VALUE string to the metadata", collect)
    .option("--owner-uid <uid>", "set file ownership user id", int)
    .option("--owner-gid <gid>", "set file ownership group id", int)
    .option("--no-xattrs", "do not import extended attributes")
    .option("--canonical-permissions", "canonicalize permissions like bare-user-only")
    .option("--no-bindings", "do not write any ref bindings")
    .option("--bootable", "flag the commit as bootable (needs usr/lib/modules/<kver>/vmlinuz)")
    .option("--orphan", "create a commit without writing a ref")
    .option("--parent <rev>", "parent commit ('none' for none)")
    .option("--fsync <bool>", "fsync objects and refs", bool)
    .action(async (o: Record<string, unknown>, cmd: Command) => {
      const trees = (o.tree as string[] | undefined) ?? [];
      if (trees.length !== 1)
        throw invalidArgument("exactly one --tree=dir=PATH or --tree=tar=FILE is required");
      if (!o.branch && !o.orphan)
        throw invalidArgument("a branch is required (-b BRANCH) unless --orphan");
      const repo = await openRepo(cmd, o.fsync === undefined ? {} : { fsync: o.fsync as boolean });
      const spec = trees[0] as string;
      const opts: CommitOptions = { tree: { dir: "" } };
      if (spec.startsWith("dir=")) opts.tree = { dir: spec.slice(4) };
      else if (spec.startsWith("tar=")) opts.tree = tarFileTree(createReadStream(spec.slice(4)));
      else throw invalidArgument(`unsupported --tree=${spec} (use dir=PATH or tar=FILE)`);
      if (o.branch && !o.orphan) opts.branch = o.branch as string;
      if (o.orphan && o.branch) opts.refBinding = o.bindings !== false;
      if (o.bindings === false) opts.refBinding = false;
      if (o.subject !== undefined) opts.subject = o.subject as string;
      if (o.body !== undefined) opts.body = o.body as string;
      if (o.timestamp !== undefined) opts.timestamp = parseTimestamp(o.timestamp as string);
      if (o.ownerUid !== undefined) opts.ownerUid = o.ownerUid as number;
      if (o.ownerGid !== undefined) opts.ownerGid = o.ownerGid as number;
      if (o.xattrs === false) opts.noXattrs = true;
      if (o.canonicalPermissions) {
        if ((o.ownerUid ?? 0) !== 0)
          throw invalidArgument(
            "Cannot specify both --canonical-permissions and non-zero --owner-uid",
          );
        if ((o.ownerGid ?? 0) !== 0)
          throw invalidArgument(
            "Cannot specify both --canonical-permissions and non-zero --owner-gid",
          );
        opts.canonicalPermissions = true;
      }
      if (o.parent !== undefined)
        opts.parent = o.parent === "none" ? null : await repo.resolveRev(o.parent as string);
      const md: [string, Variant][] = [];
      for (const kv of (o.addMetadataString as string[] | undefined) ?? []) {
        const eq = kv.indexOf("=");
        if (eq <= 0) throw invalidArgument(`--add-metadata-string expects KEY=VALUE, got ${kv}`);
        md.push([kv.slice(0, eq), new Variant("s", kv.slice(eq + 1))]);
      }
      if (md.length) opts.metadata = md;
      if (o.bootable) {
        if (!spec.startsWith("dir="))
          throw invalidArgument("--bootable is supported with --tree=dir= only");
        opts.bootable = { linux: kernelVersionIn(spec.slice(4)) };
      }
      const res = await commit(repo, opts);
      out(
        globals(cmd).json
          ? `${JSON.stringify({ commit: res.commit, tree: res.tree, meta: res.meta, parent: res.parent, stats: res.stats })}\n`
          : `${res.commit}\n`,
      );
    });

  program
    .command("ls")
    .description("list file paths")
    .option("-R, --recursive", "recurse into directories")
    .option("-C, --checksum", "show object checksums")
    .option("-d, --dironly", "do not recurse into directory arguments")
    .option("-X, --xattrs", "show extended attributes")
    .argument("<rev>")
    .argument("[paths...]")
    .action(
      async (
        rev: string,
        paths: string[],
        o: { recursive?: boolean; checksum?: boolean; dironly?: boolean; xattrs?: boolean },
        cmd: Command,
      ) => {
        const repo = await openRepo(cmd);
        const json = globals(cmd).json;
        for (const p of paths.length ? paths : ["/"]) {
          const entries = await ls(repo, rev, p, {
            ...(o.recursive ? { recursive: true } : {}),
            ...(o.dironly ? { dirOnly: true } : {}),
          });
          for (const e of entries) {
            out(
              json
                ? `${JSON.stringify({ ...e, xattrs: Object.fromEntries([...e.xattrs].map(([k, v]) => [k, Buffer.from(v).toString("base64")])) })}\n`
                : `${formatLsEntry(e, { checksums: !!o.checksum, xattrs: !!o.xattrs })}\n`,
            );
          }
        }
      },
    );

  program
    .command("cat")
    .description("concatenate files from a commit to stdout")
    .argument("<rev>")
    .argument("<paths...>")
    .action(async (rev: string, paths: string[], _o: unknown, cmd: Command) => {
      const repo = await openRepo(cmd);
      for (const p of paths)
        await pipeline(Readable.from(await cat(repo, rev, p)), process.stdout, { end: false });
    });

  program
    .command("show")
    .description("output a commit")
    .option("--print-metadata-key <key>", "print one metadata key")
    .argument("<rev>")
    .action(async (rev: string, o: { printMetadataKey?: string }, cmd: Command) => {
      const repo = await openRepo(cmd);
      const info = await show(repo, rev);
      if (o.printMetadataKey !== undefined) {
        const v = info.commit.metadata.find(([k]) => k === o.printMetadataKey);
        if (!v)
          throw new ImageModeError("NOT_FOUND", `No such metadata key '${o.printMetadataKey}'`, {
            op: "ostree.show",
          });
        out(`${formatMetadataValue(v[1])}\n`);
        return;
      }
      out(globals(cmd).json ? `${JSON.stringify(jsonCommit(info))}\n` : formatCommitInfo(info));
    });

  program
    .command("log")
    .description("show the history of a ref")
    .argument("<rev>")
    .action(async (rev: string, _o: unknown, cmd: Command) => {
      const repo = await openRepo(cmd);
      const infos = await log(repo, rev);
      if (globals(cmd).json) out(`${JSON.stringify(infos.map(jsonCommit))}\n`);
      else for (const i of infos) out(formatCommitInfo(i));
    });

  program
    .command("refs")
    .description("list refs")
    .action(async (_o: unknown, cmd: Command) => {
      const repo = await openRepo(cmd);
      const refs = await repo.listRefs();
      out(
        globals(cmd).json
          ? `${JSON.stringify(Object.fromEntries(refs))}\n`
          : [...refs.keys()].map((r) => `${r}\n`).join(""),
      );
    });

  program
    .command("rev-parse")
    .description("output the target of a rev")
    .argument("<rev>")
    .action(async (rev: string, _o: unknown, cmd: Command) => {
      const repo = await openRepo(cmd);
      out(`${await repo.resolveRev(rev)}\n`);
    });

  program
    .command("checkout")
    .description("check out a commit into a filesystem tree")
    .option("-H, --require-hardlinks", "do not fall back to full copies")
    .option("-U, --user-mode", "do not change file ownership or initialize extended attributes")
    .option("--union", "keep existing directories, overwrite existing files")
    .option("--whiteouts", "process 'whiteout' (Docker style) entries")
    .option("--subpath <path>", "check out a sub-directory")
    .argument("<rev>")
    .argument("<dest>")
    .action(
      async (
        rev: string,
        dest: string,
        o: {
          requireHardlinks?: boolean;
          userMode?: boolean;
          union?: boolean;
          whiteouts?: boolean;
          subpath?: string;
        },
        cmd: Command,
      ) => {
        const repo = await openRepo(cmd);
        const stats = await checkout(repo, rev, dest, {
          mode: o.requireHardlinks ? "hardlink" : "auto",
          ...(o.userMode ? { user: true } : {}),
          ...(o.union ? { union: true } : {}),
          ...(o.whiteouts ? { whiteouts: true } : {}),
          ...(o.subpath ? { subpath: o.subpath } : {}),
        });
        if (globals(cmd).json) out(`${JSON.stringify(stats)}\n`);
      },
    );

  program
    .command("diff")
    .description("compare two commits")
    .argument("<a>")
    .argument("<b>")
    .action(async (a: string, b: string, _o: unknown, cmd: Command) => {
      const repo = await openRepo(cmd);
      const d = await diff(repo, a, b);
      out(globals(cmd).json ? `${JSON.stringify(d)}\n` : formatDiff(d));
    });

  program
    .command("fsck")
    .description("check the repository for consistency")
    .action(async (_o: unknown, cmd: Command) => {
      const repo = await openRepo(cmd);
      const r = await fsck(repo);
      if (globals(cmd).json) out(`${JSON.stringify(r)}\n`);
      else {
        out(`Verified ${r.commits} commit(s), ${r.objects} object(s)\n`);
        for (const m of r.missing) out(`missing ${m.type} ${m.checksum}\n`);
        for (const c of r.corrupt) out(`corrupt ${c.type} ${c.checksum}: ${c.reason}\n`);
      }
      if (!r.ok) process.exitCode = 1;
    });

  program
    .command("prune")
    .description("delete unreachable objects")
    .option("--refs-only", "only keep commits reachable from refs")
    .option("--depth <n>", "only traverse N parents for each commit (-1 = infinite)", int)
    .action(async (o: { refsOnly?: boolean; depth?: number }, cmd: Command) => {
      const repo = await openRepo(cmd);
      const plan = await prune(repo, {
        ...(o.refsOnly ? { refsOnly: true } : {}),
        ...(o.depth !== undefined ? { depth: o.depth } : {}),
      });
      if (globals(cmd).json)
        out(
          `${JSON.stringify({ reachable: plan.reachable, deleted: plan.delete.length, bytes: plan.bytes })}\n`,
        );
      else
        out(
          `Total objects: ${plan.reachable + plan.delete.length}\n${plan.delete.length === 0 ? "No unreachable objects\n" : `Deleted ${plan.delete.length} objects, ${formatBytes(plan.bytes)} freed\n`}`,
        );
    });

  program
    .command("import-image")
    .description(
      "import a container image the way bootc stores it (oci:DIR[:TAG], oci-archive:FILE[:TAG], docker://REF)",
    )
    .argument("<source>")
    .option("--tls-verify <bool>", "require HTTPS and verify certificates (docker://)", bool, true)
    .option("--cert-dir <dir>", "a directory holding ca.crt for the registry (docker://)")
    .option("--platform <os/arch[/variant]>", "platform to pick from an image index", "linux/amd64")
    .option("--dry-run", "only print what would be fetched")
    .action(
      async (
        source: string,
        o: { tlsVerify: boolean; certDir?: string; platform: string; dryRun?: boolean },
        cmd: Command,
      ) => {
        const g = globals(cmd);
        const repo = await openRepo(cmd);
        const ref = parseTransportReference(source);
        const ca = o.certDir
          ? await readFile(join(o.certDir, "ca.crt")).catch(() => undefined)
          : undefined;
        const scratch =
          ref.transport === "oci-archive"
            ? await mkdtemp(join(tmpdir(), "imagemode-ostree-"))
            : undefined;
        const opened = await openTransport(ref, {
          registry: { ...(o.tlsVerify ? {} : { insecure: true }), ...(ca ? { tls: { ca } } : {}) },
          ...(scratch ? { tempDir: scratch } : {}),
        }).catch(async (e: unknown) => {
          if (scratch) await rm(scratch, { recursive: true, force: true });
          throw e;
        });
        const [os, architecture, variant] = o.platform.split("/");
        if (!os || !architecture)
          throw invalidArgument(`--platform expects os/arch[/variant], got ${o.platform}`);
        const platform = { os, architecture, ...(variant ? { variant } : {}) };
        const progress = progressListener(g);
        try {
          const reference = opened.reference || "latest";
          const common = {
            imageReference: opened.name,
            platform,
            ...(progress.listener ? { onProgress: progress.listener } : {}),
          };
          if (o.dryRun) {
            const plan = await prepareImport(repo, opened.target, reference, common);
            const summary = {
              imageRef: plan.imageRef,
              manifestDigest: plan.manifestDigest,
              present: plan.present,
              layers: plan.layers.length,
              needed: plan.needed,
              bytesNeeded: plan.bytesNeeded,
            };
            out(
              g.json
                ? `${JSON.stringify(summary)}\n`
                : `${plan.present ? "Image already present" : `Layers: ${plan.layers.length} (${plan.needed} needed, ${formatBytes(plan.bytesNeeded)})`}\n`,
            );
            return;
          }
          const res = await importImage(repo, opened.target, reference, common);
          progress.stop();
          if (g.json) {
            out(
              `${JSON.stringify({ commit: res.commit, imageRef: res.imageRef, manifestDigest: res.manifestDigest, alreadyPresent: res.alreadyPresent, layers: res.layers, filtered: Object.fromEntries(res.filtered) })}\n`,
            );
          } else {
            out(
              `Imported: ${res.imageRef}\nManifest: ${res.manifestDigest}\nCommit: ${res.commit}\n`,
            );
          }
        } finally {
          progress.stop();
          await opened.close();
          if (scratch) await rm(scratch, { recursive: true, force: true });
        }
      },
    );

  return program;
}

function jsonCommit(info: Awaited<ReturnType<typeof show>>) {
  const c = info.commit;
  return {
    checksum: info.checksum,
    parent: c.parent,
    subject: c.subject,
    body: c.body,
    timestamp: Number(c.timestamp),
    contentChecksum: info.contentChecksum,
    rootTree: c.rootTree,
    rootMeta: c.rootMeta,
    ...(info.version === undefined ? {} : { version: info.version }),
    metadata: Object.fromEntries(
      c.metadata.map(([k, v]) => [
        k,
        typeof v.value === "bigint"
          ? String(v.value)
          : v.value instanceof Uint8Array
            ? Buffer.from(v.value).toString("hex")
            : v.value,
      ]),
    ),
  };
}

/** Runs the CLI with `argv` (without node and script); returns the exit status. */
export async function main(argv: string[]): Promise<number> {
  return runCli({
    name: "imagemode-ostree",
    build: buildProgram,
    argv,
    errors: { json: "stderr", indent: 0, label: "error", textWithJson: false },
  });
}
