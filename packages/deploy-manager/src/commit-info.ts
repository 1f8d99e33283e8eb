/**
 * What a deployment needs to know about a commit before it is checked out: the kernel
 * (`usr/lib/modules/<kver>/vmlinuz` + `initramfs.img`) and its bootcsum, the os-release name,
 * the `version` metadata, and the image's `kargs.d`.
 */
import { createHash } from "node:crypto";
import { KARGS_D_DIR, kargsForArchitecture, parseKargsToml } from "@imagemode/bootloader";
import { invalidState, notFound, type OpOptions, readAll } from "@imagemode/core";
import { type LsEntry, metadataValue, type OstreeRepo } from "@imagemode/ostree-store";
import { osNameFromRelease } from "./os-release.js";

/** The kernel of a commit. */
export interface CommitKernel {
  kver: string;
  /** Paths inside the commit. */
  vmlinuz: string;
  initramfs: string | null;
  /** SHA-256 hex of vmlinuz ‖ initramfs. */
  bootcsum: string;
  /** Bytes of vmlinuz + initramfs. */
  size: number;
}

/** Facts about a commit for planning a deployment. */
export interface CommitInfo {
  checksum: string;
  kernel: CommitKernel;
  osName: string;
  version: string | null;
  /** kargs.d arguments for the architecture, in file-name order. */
  kargsD: string[];
  /** `ostree.manifest-digest` when the commit is an imported image. */
  manifestDigest: string | null;
}

async function lsOrNull(repo: OstreeRepo, rev: string, path: string): Promise<LsEntry[] | null> {
  try {
    return await repo.ls(rev, path);
  } catch {
    return null;
  }
}

async function catText(repo: OstreeRepo, rev: string, path: string): Promise<string | null> {
  try {
    return Buffer.from(await readAll(await repo.cat(rev, path), 1 << 20)).toString("utf8");
  } catch {
    return null;
  }
}

/** Resolves a symlink inside a commit once (os-release is often `../usr/lib/os-release`). */
async function readCommitText(repo: OstreeRepo, rev: string, path: string): Promise<string | null> {
  const ls = await lsOrNull(repo, rev, path);
  const e = ls?.[0];
  if (!e) return null;
  if (e.type === "symlink" && e.linkTarget) {
    const dir = path.slice(0, path.lastIndexOf("/"));
    const target = e.linkTarget.startsWith("/")
      ? e.linkTarget
      : new URL(e.linkTarget, `file://${dir}/`).pathname;
    return catText(repo, rev, target);
  }
  return e.type === "file" ? catText(repo, rev, path) : null;
}

/**
 * Finds the kernel as ostree does (modules layout): the first `usr/lib/modules/<kver>/` (byte
 * order) holding a regular `vmlinuz`; `initramfs.img` (else `initramfs`) beside it.
 *
 * @throws ImageModeError `NOT_FOUND` "Failed to find kernel in /usr/lib/modules, …".
 */
export async function findCommitKernel(
  repo: OstreeRepo,
  checksum: string,
  options: OpOptions = {},
): Promise<CommitKernel> {
  const mods = (await lsOrNull(repo, checksum, "/usr/lib/modules")) ?? [];
  for (const m of mods.filter((x) => x.type === "dir").sort((a, b) => (a.path < b.path ? -1 : 1))) {
    const files = (await lsOrNull(repo, checksum, m.path)) ?? [];
    const vm = files.find((f) => f.path === `${m.path}/vmlinuz` && f.type === "file");
    if (!vm) continue;
    const ird =
      files.find((f) => f.path === `${m.path}/initramfs.img` && f.type === "file") ??
      files.find((f) => f.path === `${m.path}/initramfs` && f.type === "file");
    const h = createHash("sha256");
    let size = 0;
    for (const p of [vm.path, ...(ird ? [ird.path] : [])]) {
      for await (const chunk of await repo.cat(checksum, p)) {
        if (options.signal?.aborted) throw options.signal.reason;
        h.update(chunk);
        size += chunk.length;
      }
    }
    return {
      kver: m.path.slice(m.path.lastIndexOf("/") + 1),
      vmlinuz: vm.path,
      initramfs: ird?.path ?? null,
      bootcsum: h.digest("hex"),
      size,
    };
  }
  throw notFound("Failed to find kernel in /usr/lib/modules, /usr/lib/ostree-boot or /boot", {
    op: "deploy.findKernel",
    data: { checksum },
  });
}

/** Maps Node's `process.arch` names to the Rust names kargs.d uses. */
export function rustArch(arch: string): string {
  return (
    (
      { x64: "x86_64", arm64: "aarch64", ppc64: "powerpc64", s390x: "s390x" } as Record<
        string,
        string
      >
    )[arch] ?? arch
  );
}

/** The kargs.d arguments shipped in a commit (`usr/lib/bootc/kargs.d/*.toml`, sorted by name). */
export async function commitKargsD(
  repo: OstreeRepo,
  checksum: string,
  arch = rustArch(process.arch),
): Promise<string[]> {
  const files = (await lsOrNull(repo, checksum, `/${KARGS_D_DIR}`)) ?? [];
  const configs = [];
  for (const f of files
    .filter((x) => x.type === "file" && x.path.endsWith(".toml"))
    .sort((a, b) => (a.path < b.path ? -1 : 1))) {
    const text = (await catText(repo, checksum, f.path)) ?? "";
    configs.push(parseKargsToml(text, f.path.slice(f.path.lastIndexOf("/") + 1)));
  }
  return kargsForArchitecture(configs, arch);
}

/** Reads everything {@link CommitInfo} holds. */
export async function readCommitInfo(
  repo: OstreeRepo,
  checksum: string,
  options: OpOptions = {},
): Promise<CommitInfo> {
  const c = await repo.readCommit(checksum);
  const kernel = await findCommitKernel(repo, checksum, options);
  const rel =
    (await readCommitText(repo, checksum, "/usr/lib/os-release")) ??
    (await readCommitText(repo, checksum, "/usr/etc/os-release"));
  const osName = rel === null ? null : osNameFromRelease(rel);
  if (!osName)
    throw invalidState("No PRETTY_NAME or ID in usr/lib/os-release or etc/os-release", {
      op: "deploy.commitInfo",
      data: { checksum },
    });
  const v = metadataValue(c.metadata, "version");
  const md = metadataValue(c.metadata, "ostree.manifest-digest");
  return {
    checksum,
    kernel,
    osName,
    version: v && typeof v.value === "string" ? v.value : null,
    kargsD: await commitKargsD(repo, checksum),
    manifestDigest: md && typeof md.value === "string" ? md.value : null,
  };
}
