/**
 * The composition: image ref → OCI layout cache (oci-fetch) → build repo (ostree-store) →
 * blueprint plan → fresh-sysroot deploy plan and `FileTree` (deploy-manager) → GRUB for BIOS and
 * UEFI (bootloader) → GPT disk (diskimage) → raw/qcow2/vmdk/vhd, laid out like
 * bootc-image-builder's output directory. Unprivileged: no root, mounts or loop devices.
 */
import { createHash } from "node:crypto";
import * as fsp from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import {
  type Blueprint,
  type EtcFiles,
  formatForFile,
  parseBlueprint,
  planCustomizations,
  planToTreeEdits,
  validateBlueprint,
} from "@imagemode/blueprint";
import {
  type BootloaderPlan,
  biosMessageBootCode,
  findImageEfiBinaries,
  findImageGrub,
  getBlsValue,
  grubBackend,
  parseBlsEntry,
  placeFiles,
  type RawWrite,
  SYSTEMD_BOOT_EFI,
  systemdBootBackend,
} from "@imagemode/bootloader";
import {
  ImageModeError,
  invalidArgument,
  type OpOptions,
  type ProgressListener,
  readAll,
  readHostDirectory,
  throwIfAborted,
  toImageModeError,
} from "@imagemode/core";
import {
  commitFileContexts,
  imageReferenceFromUser,
  newOrigin,
  planFreshSysroot,
  sysrootTree,
} from "@imagemode/deploy-manager";
import {
  type DiskLayout,
  defaultLayout,
  type RawSource,
  writeDisk,
  writeQcow2,
  writeRaw,
  writeVhd,
  writeVmdk,
} from "@imagemode/diskimage";
import {
  copy,
  lookupCredentials,
  OciLayout,
  openTransport,
  parseTransportReference,
  type TransportReference,
} from "@imagemode/oci-fetch";
import { importImage, OstreeRepo } from "@imagemode/ostree-store";
import { checkBootcImage, type ImageFacts, readImageFacts } from "./image-check.js";
import {
  applyOverlay,
  collect,
  labelOverlay,
  mergeEntries,
  overlayOf,
  splitBoot,
  treeOf,
} from "./sysroot-layout.js";

/** Image types and where bootc-image-builder puts them. */
export const IMAGE_TYPES = {
  qcow2: { dir: "qcow2", file: "disk.qcow2", format: "qcow2" },
  raw: { dir: "image", file: "disk.raw", format: "raw" },
  ami: { dir: "image", file: "disk.raw", format: "raw" },
  vmdk: { dir: "vmdk", file: "disk.vmdk", format: "vmdk" },
  vhd: { dir: "vpc", file: "disk.vhd", format: "vhd" },
} as const;

/** One of {@link IMAGE_TYPES}. */
export type ImageType = keyof typeof IMAGE_TYPES;

/** Options of {@link buildImage}. */
export interface BuildOptions extends OpOptions {
  imageRef: string;
  types: ImageType[];
  output: string;
  rootfs: "ext4" | "xfs";
  config?: string;
  size?: number;
  kargs: string[];
  tlsVerify: boolean;
  authfile?: string;
  certDir?: string;
  cache?: string;
  chown?: { uid: number; gid: number };
  /** Architecture to build for, in bootc-image-builder's terms (default x86_64). */
  targetArch?: string;
  env?: Record<string, string | undefined>;
  /**
   * `grub` (default: BIOS and UEFI) or `systemd-boot` (UEFI only: loader, entries and kernels on
   * the ESP; a BIOS boot shows {@link UEFI_ONLY_MESSAGE}).
   */
  bootloader?: "grub" | "systemd-boot";
  /** Seconds since the epoch for the blueprint's shadow dates (default now). */
  now?: () => number;
}

/** What a BIOS booting a systemd-boot disk prints (the MBR holds only this message; < 80 columns). */
export const UEFI_ONLY_MESSAGE =
  "imagemode: this disk boots with UEFI only (systemd-boot), not BIOS.\r\n";

/** One stage's wall time. */
export interface StageTime {
  stage: "fetch" | "import" | "plan" | "write" | "convert";
  ms: number;
}

/** What {@link buildImage} made. */
export interface BuildResult {
  image: string;
  manifestDigest: string;
  commit: string;
  deployment: string;
  kargs: string;
  layout: DiskLayout;
  outputs: { type: ImageType; path: string; format: string; fileSize: number; manifest: string }[];
  stages: StageTime[];
  users: string[];
  layers: { present: number; needed: number; bytesNeeded: number };
}

const op = "build";

/** Default cache: `$XDG_CACHE_HOME/imagemode`, else `~/.cache/imagemode`. */
export function defaultCacheDir(env: Record<string, string | undefined>): string {
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, "imagemode");
  return join(env.HOME ?? homedir(), ".cache", "imagemode");
}

/** `docker://…`, `oci:…`, `oci-archive:…`, or a bare registry reference (docker). */
export function parseImageArg(ref: string): TransportReference {
  if (/^(docker:\/\/|oci:|oci-archive:)/.test(ref)) return parseTransportReference(ref);
  return parseTransportReference(`docker://${ref}`);
}

/** The user-facing name bootc-image-builder's messages use. */
function displayName(ref: TransportReference): string {
  if (ref.transport === "docker") {
    const i = ref.image;
    return `${i.registry}/${i.repository}${i.tag ? `:${i.tag}` : ""}${i.digest ? `@${i.digest}` : ""}`;
  }
  return `${ref.transport}:${ref.path}${ref.tag ? `:${ref.tag}` : ""}`;
}

/** A tag for the cache layout: the reference, made tag-safe, plus a short hash. */
function cacheTag(ref: string): string {
  const h = createHash("sha256").update(ref).digest("hex").slice(0, 12);
  return `${ref.replace(/[^\w.-]+/g, "_").slice(0, 100)}-${h}`.replace(/^[^\w]/, "x");
}

async function textOf(repo: OstreeRepo, commit: string, path: string): Promise<string | undefined> {
  try {
    return Buffer.from(await readAll(await repo.cat(commit, path), 64 << 20)).toString("utf8");
  } catch {
    return undefined;
  }
}

async function loadBlueprint(file: string | undefined): Promise<Blueprint> {
  if (!file) return {} as Blueprint;
  let text: string;
  try {
    text = await fsp.readFile(file, "utf8");
  } catch (e) {
    throw toImageModeError(e, "build.config", { path: file });
  }
  const v = validateBlueprint(parseBlueprint(text, formatForFile(file), { file }), {
    imageType: "qcow2",
  });
  if (!v.ok)
    throw new ImageModeError(
      "INVALID_ARGUMENT",
      `${file}: ${v.issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`,
      { op: "build.config", data: { issues: v.issues } },
    );
  return v.blueprint;
}

/**
 * The image's size for the layout (root gets twice this): the bytes of the build repository's
 * content objects, each counted once. Reads directory entries and sizes only.
 */
async function contentBytes(repo: OstreeRepo): Promise<number> {
  const objects = join(repo.path, "objects");
  let total = 0;
  for (const d of await fsp.readdir(objects)) {
    const dir = join(objects, d);
    const files = (await fsp.readdir(dir)).filter((f) => f.endsWith(".file"));
    const sizes = await Promise.all(
      files.map((f) => fsp.lstat(join(dir, f)).then((st) => st.size)),
    );
    for (const n of sizes) total += n;
  }
  return total;
}

/**
 * Fails fast, before any work, when the output cannot be given to `UID:GID` (an unprivileged
 * user may only chown to itself and its groups): a probe file in the work directory is chowned.
 */
async function checkChown(work: string, owner: { uid: number; gid: number }): Promise<void> {
  const probe = join(work, "chown-probe");
  await fsp.writeFile(probe, "");
  try {
    await fsp.chown(probe, owner.uid, owner.gid);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== "EPERM" && code !== "EINVAL") throw e;
    throw new ImageModeError(
      "DENIED",
      `cannot chown the output to ${owner.uid}:${owner.gid}: ${code === "EPERM" ? "operation not permitted" : "invalid argument"} (running as uid ${process.getuid?.() ?? "?"}; --chown needs root or CAP_CHOWN unless it names your own uid and one of your groups)`,
      { op: "build.chown", data: { uid: owner.uid, gid: owner.gid, errno: code } },
    );
  } finally {
    await fsp.rm(probe, { force: true });
  }
}

/** Copies the bootloader payloads of the commit into `dir` (GRUB modules, EFI binaries). */
async function extractBootloaderFiles(repo: OstreeRepo, commit: string, dir: string) {
  // GRUB's i386-pc modules (core.img is made from them); of x86_64-efi only the prebuilt image
  const wanted = [
    "usr/lib/grub/i386-pc",
    "usr/lib/grub/x86_64-efi/monolithic",
    "usr/lib/grub/x86_64-efi-signed",
    "usr/lib/systemd/boot",
    "usr/lib/bootupd",
    "usr/lib/shim",
    "usr/lib/efi",
    "usr/share/grub",
  ];
  const files: { path: string; content: () => Promise<AsyncIterable<Uint8Array>> }[] = [];
  for (const sub of wanted) {
    if ((await repo.ls(commit, sub).catch(() => [])).length === 0) continue;
    for await (const e of repo.readCommitTree(commit, { subpath: sub, hardlinks: false })) {
      const p = e.path === "." ? join(dir, sub) : join(dir, sub, e.path);
      if (e.type === "dir") await fsp.mkdir(p, { recursive: true });
      else if (e.type === "symlink") await fsp.symlink(e.linkTarget ?? "", p);
      else if (e.type === "file" && e.content) files.push({ path: p, content: e.content });
    }
  }
  // a few hundred small files: written several at a time
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const f = files[next++] as (typeof files)[number];
      const fh = await fsp.open(f.path, "w", 0o644);
      try {
        for await (const chunk of await f.content()) await fh.write(chunk);
      } finally {
        await fh.close();
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
}

/** Builds disk images from a bootc container image. */
export async function buildImage(options: BuildOptions): Promise<BuildResult> {
  const env = options.env ?? process.env;
  const signal = options.signal;
  const progress: ProgressListener = options.onProgress ?? (() => {});
  const stages: StageTime[] = [];
  const targetArch = options.targetArch ?? "x86_64";
  const ociArch =
    targetArch === "x86_64" ? "amd64" : targetArch === "aarch64" ? "arm64" : targetArch;
  const types = [...new Set(options.types)];
  if (types.length === 0) throw invalidArgument("no --type given", { op });
  const output = resolve(options.output);
  const cacheDir = resolve(options.cache ?? defaultCacheDir(env));
  const blueprint = await loadBlueprint(options.config);
  const ref = parseImageArg(options.imageRef);
  const name = displayName(ref);
  let t0 = Date.now();
  const step = (n: number, description: string) =>
    progress({ type: "step", task: op, step: n, steps: 5, description });

  await fsp.mkdir(output, { recursive: true });
  await fsp.mkdir(cacheDir, { recursive: true });
  const work = await fsp.mkdtemp(join(output, ".imagemode-build-"));
  // the build repository goes as soon as the disk holds its objects (tens of thousands of files:
  // unlinking them takes seconds, so it runs beside the conversion), the rest of `work` at the end
  let repoRemoval: Promise<void> | undefined;
  const dropRepo = () => {
    repoRemoval ??= fsp.rm(join(work, "repo"), { recursive: true, force: true });
    repoRemoval.catch(() => {}); // awaited in finally
  };
  try {
    if (options.chown) await checkChown(work, options.chown);
    // 1. fetch into the OCI layout cache
    step(1, `fetch ${name}`);
    const ca = options.certDir
      ? await fsp.readFile(join(options.certDir, "ca.crt")).catch(() => undefined)
      : undefined;
    const src = await openTransport(ref, {
      registry: {
        ...(options.tlsVerify ? {} : { insecure: true }),
        ...(ca ? { tls: { ca } } : {}),
        credentials: (registry, repository) =>
          lookupCredentials(registry, repository, {
            ...(options.authfile ? { authFile: options.authfile } : {}),
            env,
            homeDir: env.HOME ?? homedir(),
            readFile: (f) => fsp.readFile(f, "utf8").catch(() => undefined),
          }),
      },
      tempDir: work,
    });
    const layout = await OciLayout.open(join(cacheDir, "oci"), { create: true });
    const tag = cacheTag(options.imageRef);
    let facts: ImageFacts;
    let copied: { present: number; needed: number; bytesNeeded: number };
    try {
      const srcRef = src.reference || "latest";
      facts = await readImageFacts(src.target, srcRef, ociArch);
      checkBootcImage(name, facts, targetArch);
      const r = await copy(src.target, layout, facts.manifestDigest, tag, {
        platform: { os: "linux", architecture: ociArch },
        ...(signal ? { signal } : {}),
        onProgress: progress,
      });
      copied = { present: r.present, needed: r.needed, bytesNeeded: r.bytesNeeded };
    } finally {
      await src.close();
    }
    stages.push({ stage: "fetch", ms: Date.now() - t0 });

    // 2. import into a fresh build repository
    t0 = Date.now();
    step(2, "import into an ostree repository");
    // a scratch repository, deleted after the build: what must be durable is the disk image
    // (writeDisk fsyncs it), so the per-object fsync of a long-lived repository is not paid here
    const repo = await OstreeRepo.init(join(work, "repo"), { mode: "bare-user", fsync: false });
    const transport = ref.transport === "docker" ? `docker://${name}` : options.imageRef;
    // keep the image's top-level symlinks (bin, sbin, lib → usr/…, home → var/home): the
    // deployment is the whole image root, as in a bootc base image's ostree commit
    const imported = await importImage(repo, layout, tag, {
      imageReference: transport,
      allowNonUsr: true,
      ...(signal ? { signal } : {}),
      onProgress: progress,
    });
    stages.push({ stage: "import", ms: Date.now() - t0 });

    // 3. plan: blueprint, layout, deployment
    t0 = Date.now();
    step(3, "plan the disk and the deployment");
    throwIfAborted(signal, op);
    const imageSize = contentBytes(repo);
    imageSize.catch(() => {}); // awaited below; a failure surfaces there
    const etcFiles: EtcFiles = {
      passwd: (await textOf(repo, imported.commit, "usr/etc/passwd")) ?? "",
      group: (await textOf(repo, imported.commit, "usr/etc/group")) ?? "",
    };
    for (const [k, p] of [
      ["shadow", "usr/etc/shadow"],
      ["gshadow", "usr/etc/gshadow"],
      ["loginDefs", "usr/etc/login.defs"],
      ["libPasswd", "usr/lib/passwd"],
      ["libGroup", "usr/lib/group"],
      ["useraddDefaults", "usr/etc/default/useradd"],
    ] as const) {
      const t = await textOf(repo, imported.commit, p);
      if (t !== undefined) etcFiles[k] = t;
    }
    const custom = planCustomizations(blueprint, etcFiles, {
      ...(options.now ? { clock: options.now } : {}),
    });
    const disk = defaultLayout({
      rootfs: options.rootfs,
      imageSize: await imageSize,
      seed: imported.manifestDigest,
      filesystems: custom.storage.filesystems.map((f) => ({
        mountpoint: f.mountpoint,
        minsize: f.minSize,
      })),
      ...(options.size ? { size: options.size } : {}),
    });
    const part = (n: string) => {
      const p = disk.partitions.find((x) => x.name === n);
      if (!p) throw new ImageModeError("INTERNAL", `layout has no ${n} partition`, { op });
      return p;
    };
    const rootPart = part("root");
    const bootPart = part("boot");
    const biosPart = part("bios-boot");
    const kargs = [
      `root=UUID=${rootPart.fsUuid}`,
      "rw",
      "console=tty0",
      "console=ttyS0",
      ...custom.kernelArgs,
      ...options.kargs,
    ];
    const stateroot = "default";
    const plan = await planFreshSysroot({
      repo,
      commit: imported.commit,
      stateroot,
      origin: newOrigin({ image: imageReferenceFromUser(transport) }),
      kargs,
    });
    const deployment = `ostree/deploy/${stateroot}/deploy/${plan.name}`;
    // the sysroot as one stream: blueprint edits merged in, /boot split off (read up to there)
    // the edits get the image's SELinux labels (none when the image carries no policy)
    const overlay = labelOverlay(
      await overlayOf(planToTreeEdits(custom), deployment, stateroot),
      await commitFileContexts(repo, imported.commit, signal ? { signal } : {}),
      deployment,
      stateroot,
    );
    const split = await splitBoot(
      applyOverlay(sysrootTree(plan, { repo, ...(signal ? { signal } : {}) }), overlay),
    );

    // bootloader: GRUB for BIOS (core.img from the image's modules) and UEFI (the image's
    // binaries), or systemd-boot (UEFI only) with the entries and kernels on the ESP
    const bl = join(work, "bootloader");
    await fsp.mkdir(bl);
    await extractBootloaderFiles(repo, imported.commit, bl);
    const entries = (plan.write?.entries ?? []).map((e) => parseBlsEntry(e.text, e.fileName));
    const espDir = join(work, "esp");
    const bootDir = join(work, "boot");
    await fsp.mkdir(espDir);
    await fsp.mkdir(bootDir);
    let blPlan: BootloaderPlan;
    let rawWrites: RawWrite[];
    if (options.bootloader === "systemd-boot") {
      const efiBinary = join(bl, SYSTEMD_BOOT_EFI);
      if (
        !(await fsp.stat(efiBinary).then(
          (st) => st.isFile(),
          () => false,
        ))
      )
        throw new ImageModeError(
          "NOT_FOUND",
          `image ${name} carries no systemd-boot (/${SYSTEMD_BOOT_EFI})`,
          { op },
        );
      const backend = systemdBootBackend({
        efiBinary,
        entriesOn: "esp",
        loader: { editor: false },
      });
      blPlan = await backend.plan({ entries, timeout: 0 });
      await placeFiles(blPlan.files, { esp: espDir, boot: bootDir });
      // the kernels where the ESP's entries point (their paths are /boot-relative, and the same
      // paths on the ESP): firmware has no ext4/xfs driver, so systemd-boot reads only the ESP
      const k = plan.kernel;
      const kdir = `ostree/${stateroot}-${k.bootcsum}`;
      for (const e of entries)
        if (getBlsValue(e, "linux") !== `/${kdir}/vmlinuz-${k.kver}`)
          throw new ImageModeError("INTERNAL", `entry ${e.fileName} boots another kernel`, { op });
      await fsp.mkdir(join(espDir, kdir), { recursive: true });
      const kfiles: [string, string][] = [[k.vmlinuz, `vmlinuz-${k.kver}`]];
      if (k.initramfs) kfiles.push([k.initramfs, `initramfs-${k.kver}.img`]);
      for (const [src, dest] of kfiles) {
        const fh = await fsp.open(join(espDir, kdir, dest), "w", 0o644);
        try {
          for await (const chunk of await repo.cat(plan.checksum, src)) await fh.write(chunk);
        } finally {
          await fh.close();
        }
      }
      rawWrites = [biosMessageBootCode(UEFI_ONLY_MESSAGE)];
    } else {
      const grub = await findImageGrub(bl);
      const efi = await findImageEfiBinaries(bl);
      if (!efi && !(grub.i386PcDir && grub.bootImg))
        throw new ImageModeError(
          "NOT_FOUND",
          `image ${name} carries no bootloader (GRUB or EFI binaries)`,
          { op },
        );
      const backend = grubBackend({
        bootFsUuid: bootPart.fsUuid,
        ...(grub.i386PcDir && grub.bootImg
          ? {
              bios: {
                partition: { startLba: biosPart.startLba, sectors: biosPart.size / 512 },
                bootImg: await fsp.readFile(grub.bootImg),
                moduleDir: grub.i386PcDir,
              },
            }
          : {}),
        ...(efi ? { efi: { binaries: efi } } : {}),
      });
      blPlan = await backend.plan({ entries, timeout: 1 });
      await placeFiles(
        blPlan.files.filter((f) => !(f.partition === "boot" && f.path.startsWith("loader"))),
        { esp: espDir, boot: bootDir },
      );
      // ostree's GRUB layout: grub/grub.cfg -> ../loader/grub.cfg, the menu in loader.<bootversion>/,
      // so a later deployment that writes loader.<other>/grub.cfg switches menus with the loader symlink
      const bv = plan.write?.newBootversion ?? 0;
      await fsp.mkdir(join(bootDir, `loader.${bv}`), { recursive: true });
      await fsp.rename(join(bootDir, "grub/grub.cfg"), join(bootDir, `loader.${bv}/grub.cfg`));
      await fsp.symlink("../loader/grub.cfg", join(bootDir, "grub/grub.cfg"));
      rawWrites = blPlan.rawWrites;
    }
    const owner = { owner: { uid: 0, gid: 0 } };
    const bootEntries = mergeEntries(
      split.boot,
      (await collect(readHostDirectory(bootDir, { ...owner, includeRoot: false }))) ?? [],
    );
    stages.push({ stage: "plan", ms: Date.now() - t0 });

    // 4. write the disk with diskimage's writeDisk, the bootloader's raw writes with it. One
    // output type: straight to that format (sparse staging file, then converted). Several: a
    // sparse raw disk, converted to each type from the extents written (holes are never read)
    t0 = Date.now();
    step(4, `write ${disk.partitions.length} partitions`);
    const contents = {
      esp: {
        fs: "vfat" as const,
        tree: readHostDirectory(espDir, { ...owner, includeRoot: true }),
      },
      boot: { fs: options.rootfs, tree: treeOf(bootEntries) },
      root: { fs: options.rootfs, tree: split.root },
    };
    const made: { type: ImageType; tmp: string }[] = [];
    const co = { ...(signal ? { signal } : {}), onProgress: progress };
    const [only] = types;
    const single = types.length === 1 && only ? only : undefined;
    let converting: number | undefined;
    const staging = join(work, single ? `out-${single}` : "disk.raw");
    const written = await writeDisk(disk, contents, {
      output: staging,
      format: single ? IMAGE_TYPES[single].format : "raw",
      tmpDir: work,
      rawWrites: rawWrites.map((w) => ({
        offset: w.offset,
        data: w.content,
        limit: w.limit,
        description: w.description,
      })),
      ...(signal ? { signal } : {}),
      onProgress: (e) => {
        if (converting === undefined && /^disk\.(qcow2|vmdk|vhd)$/.test(e.task)) {
          converting = Date.now();
          dropRepo(); // every object has been read: unlinking overlaps the conversion
        }
        progress(e);
      },
    });
    const wrote = Date.now();
    dropRepo();
    stages.push({ stage: "write", ms: (converting ?? wrote) - t0 });
    step(5, `convert to ${types.join(", ")}`);
    if (single) made.push({ type: single, tmp: staging });
    else {
      const src: RawSource = { path: staging, size: disk.size, extents: written.extents };
      for (const type of types) {
        const t = IMAGE_TYPES[type];
        const tmp = join(work, `out-${type}`);
        if (t.format === "raw") await writeRaw(src, tmp, co);
        else if (t.format === "qcow2") await writeQcow2(src, tmp, co);
        else if (t.format === "vmdk") await writeVmdk(src, tmp, co);
        else await writeVhd(src, tmp, co);
        made.push({ type, tmp });
      }
    }
    stages.push({ stage: "convert", ms: Date.now() - (converting ?? wrote) });

    // 5. bootc-image-builder's output layout, a manifest per type
    const outputs: BuildResult["outputs"] = [];
    for (const { type, tmp } of made) {
      const t = IMAGE_TYPES[type];
      const dir = join(output, t.dir);
      await fsp.mkdir(dir, { recursive: true });
      const dest = join(dir, t.file);
      await fsp.rename(tmp, dest);
      const fileSize = (await fsp.stat(dest)).size;
      const manifest = join(output, `manifest-${type}.json`);
      const doc = {
        imagemode: { version: 1 },
        type,
        image: name,
        manifestDigest: imported.manifestDigest,
        commit: imported.commit,
        deployment,
        kargs: plan.kargs,
        rootfs: options.rootfs,
        disk: {
          path: `${t.dir}/${t.file}`,
          format: t.format,
          size: disk.size,
          fileSize,
          table: disk.table,
          diskId: disk.diskId,
          partitions: disk.partitions.map((p) => ({
            number: p.number,
            name: p.name,
            label: p.label,
            type: p.type,
            start: p.offset,
            size: p.size,
            fs: p.fs,
            fsUuid: p.fsUuid,
            ...(p.mountpoint ? { mountpoint: p.mountpoint } : {}),
          })),
        },
        bootloader: blPlan.backend,
        users: custom.users.map((u) => u.name),
      };
      await fsp.writeFile(`${manifest}.tmp`, `${JSON.stringify(doc, null, 2)}\n`);
      await fsp.rename(`${manifest}.tmp`, manifest);
      outputs.push({ type, path: dest, format: t.format, fileSize, manifest });
    }
    if (options.chown) {
      // like bootc-image-builder's chownR of the output directory, for what this build made
      const { uid, gid } = options.chown;
      await fsp.chown(output, uid, gid);
      for (const o of outputs) {
        await fsp.chown(dirname(o.path), uid, gid);
        await fsp.chown(o.path, uid, gid);
        await fsp.chown(o.manifest, uid, gid);
      }
    }
    return {
      image: name,
      manifestDigest: imported.manifestDigest,
      commit: imported.commit,
      deployment,
      kargs: plan.kargs,
      layout: disk,
      outputs,
      stages,
      users: custom.users.map((u) => u.name),
      layers: copied,
    };
  } catch (e) {
    throw toImageModeError(e, op);
  } finally {
    await repoRemoval?.catch(() => {});
    await fsp.rm(work, { recursive: true, force: true });
  }
}
