/**
 * One interface over GRUB and systemd-boot: plan the files (and raw disk writes), apply them to
 * directories standing for the partitions, read the menu back, choose the default entry.
 */
import * as path from "node:path";
import { notFound, type OpOptions, throwIfAborted, toImageModeError } from "@imagemode/core";
import {
  type BlsEntry,
  parseBlsEntry,
  parseEntryFileName,
  serializeBlsEntry,
  sortBootEntries,
} from "./bls.js";
import { type BootFs, nodeBootFs } from "./fs.js";
import { type BiosBootPartition, makeGrubImage, planBiosGrubInstall } from "./grub-bios.js";
import { type GrubConfigOptions, renderGrubConfig } from "./grub-config.js";
import { type ImageEfiBinaries, planGrubEfiFiles } from "./grub-efi.js";
import { parseGrubenv, serializeGrubenv } from "./grubenv.js";
import {
  applyRawWrites,
  type PartitionRole,
  type PlacedFile,
  placeFiles,
  type RawWrite,
} from "./placement.js";
import {
  defaultPatternFor,
  encodeLoaderEfiVariable,
  type LoaderConf,
  loaderEfiVariablePath,
  oneShotOfflineError,
  parseLoaderConf,
  planSystemdBoot,
  renderLoaderConf,
} from "./systemd-boot.js";

/** Directories standing for the partitions, and the disk image for raw writes (BIOS GRUB). */
export interface BootloaderTargets {
  /** The ESP's root (a staging directory or a mounted ESP). */
  esp?: string;
  /** The /boot (XBOOTLDR) partition's root. */
  boot?: string;
  /** The whole-disk image file, for raw writes (MBR, BIOS boot partition). */
  disk?: string;
}

/** What to install. */
export interface BootloaderInstall {
  /** BLS entries; their `linux`/`initrd` paths are relative to the partition holding the kernels. */
  entries: readonly BlsEntry[];
  /** Id of the default entry (default: the first in menu order). */
  defaultEntry?: string;
  /** Menu timeout in seconds (default 0 for systemd-boot, 5 for GRUB). */
  timeout?: number;
  /** Extra files to place (kernels, initrds). */
  files?: readonly PlacedFile[];
}

/** A backend's plan: plain data. */
export interface BootloaderPlan {
  backend: string;
  files: PlacedFile[];
  rawWrites: RawWrite[];
}

/** Options with an injected file system. */
export interface BackendOptions extends OpOptions {
  fs?: BootFs;
}

/** A bootloader implementation. GRUB and systemd-boot pass the same conformance suite. */
export interface BootloaderBackend {
  readonly name: "grub" | "systemd-boot";
  /** Plans an install (may run host tools such as `grub-mkimage`). */
  plan(install: BootloaderInstall, options?: BackendOptions): Promise<BootloaderPlan>;
  /** Applies a plan: files into the target directories, raw writes into `targets.disk`. */
  apply(plan: BootloaderPlan, targets: BootloaderTargets, options?: BackendOptions): Promise<void>;
  /** The installed entries in the order the menu shows them. */
  listEntries(targets: BootloaderTargets, options?: BackendOptions): Promise<BlsEntry[]>;
  /** The id of the entry that boots next without user input. */
  readDefault(targets: BootloaderTargets, options?: BackendOptions): Promise<string | null>;
  /**
   * Makes `id` the default. `oneShot`: only for the next boot (GRUB: grubenv `next_entry`;
   * systemd-boot: the `LoaderEntryOneShot` EFI variable, which needs a running system).
   *
   * @throws ImageModeError `NOT_FOUND` for an unknown id; `UNSUPPORTED` for a one-shot the backend cannot do offline.
   */
  setDefault(
    targets: BootloaderTargets,
    id: string,
    options?: BackendOptions & { oneShot?: boolean },
  ): Promise<void>;
}

function need(targets: BootloaderTargets, role: PartitionRole): string {
  const dir = targets[role];
  if (dir === undefined) throw notFound(`no ${role} directory given`, { op: "bootloader.targets" });
  return dir;
}

async function readEntriesDir(fs: BootFs, dir: string, signal?: AbortSignal): Promise<BlsEntry[]> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") return [];
    throw toImageModeError(err, "bootloader.listEntries", { dir });
  }
  const out: BlsEntry[] = [];
  for (const n of names.filter((x) => x.endsWith(".conf")).sort()) {
    throwIfAborted(signal, "bootloader.listEntries");
    out.push(parseBlsEntry(new TextDecoder().decode(await fs.readFile(path.join(dir, n))), n));
  }
  return out;
}

async function writeAtomic(fs: BootFs, dest: string, content: Uint8Array | string): Promise<void> {
  const tmp = `${dest}.imagemode-tmp`;
  await fs.writeFile(tmp, content, { mode: 0o644 });
  await fs.fsync(tmp);
  await fs.rename(tmp, dest);
  await fs.fsync(path.dirname(dest));
}

function findEntry(entries: readonly BlsEntry[], id: string): BlsEntry {
  const e = entries.find((x) => parseEntryFileName(x.fileName).id === id);
  if (!e)
    throw notFound(`no boot entry with id ${JSON.stringify(id)}`, {
      op: "bootloader.setDefault",
      data: { id, ids: entries.map((x) => parseEntryFileName(x.fileName).id) },
    });
  return e;
}

/** GRUB backend options. */
export interface GrubBackendOptions {
  /** Filesystem UUID of the /boot partition (kernels, `grub/grub.cfg`, `grub/grubenv`, `loader/entries`). */
  bootFsUuid: string;
  /** BIOS install: core.img from `moduleDir` (built with the host's grub-mkimage) or a given `coreImg`. */
  bios?: {
    partition: BiosBootPartition;
    bootImg: Uint8Array;
    moduleDir?: string;
    coreImg?: Uint8Array;
    existingMbr?: Uint8Array;
  };
  /** UEFI install: the image's binaries, a prebuilt GRUB EFI image, or a module dir to build one from. */
  efi?:
    | { binaries: ImageEfiBinaries }
    | { grubImage: Uint8Array; vendor?: string }
    | { moduleDir: string; vendor?: string };
  /** Directory of grub.cfg and grubenv on /boot (default `grub`). */
  grubDir?: string;
  /** Passed to {@link renderGrubConfig}. */
  config?: Omit<GrubConfigOptions, "bootFsUuid" | "defaultEntry" | "timeout">;
}

/**
 * A GRUB {@link BootloaderBackend}: grub.cfg + grubenv + `loader/entries` on /boot; BIOS and/or UEFI.
 * `plan` is an install: it writes a fresh, empty grubenv (use `setDefault` afterwards).
 */
export function grubBackend(opts: GrubBackendOptions): BootloaderBackend {
  const grubDir = opts.grubDir ?? "grub";
  const envPath = (t: BootloaderTargets): string => path.join(need(t, "boot"), grubDir, "grubenv");
  const readEnv = async (fs: BootFs, t: BootloaderTargets): Promise<Map<string, string>> => {
    try {
      return parseGrubenv(await fs.readFile(envPath(t)));
    } catch (err) {
      if ((err as { code?: string }).code === "ENOENT") return new Map();
      throw err;
    }
  };
  const backend: BootloaderBackend = {
    name: "grub",
    async plan(install, options = {}) {
      const files: PlacedFile[] = [...(install.files ?? [])];
      const rawWrites: RawWrite[] = [];
      const cfg = renderGrubConfig(install.entries, {
        ...opts.config,
        bootFsUuid: opts.bootFsUuid,
        timeout: install.timeout ?? 5,
        ...(install.defaultEntry === undefined ? {} : { defaultEntry: install.defaultEntry }),
      });
      files.push({
        kind: "file",
        partition: "boot",
        path: `${grubDir}/grub.cfg`,
        mode: 0o644,
        content: cfg,
      });
      files.push({
        kind: "file",
        partition: "boot",
        path: `${grubDir}/grubenv`,
        mode: 0o644,
        content: serializeGrubenv(new Map()),
      });
      files.push({ kind: "dir", partition: "boot", path: "loader/entries", mode: 0o755 });
      for (const e of install.entries)
        files.push({
          kind: "file",
          partition: "boot",
          path: `loader/entries/${e.fileName}`,
          mode: 0o644,
          content: serializeBlsEntry(e),
        });
      const mk = {
        bootFsUuid: opts.bootFsUuid,
        prefix: `/${grubDir}`,
        ...(options.fs ? { fs: options.fs } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      };
      if (opts.bios) {
        const b = opts.bios;
        const coreImg =
          b.coreImg ??
          (b.moduleDir
            ? await makeGrubImage({ ...mk, format: "i386-pc", moduleDir: b.moduleDir })
            : undefined);
        if (!coreImg)
          throw notFound("BIOS install needs a core.img or a module directory", {
            op: "grub.plan",
          });
        rawWrites.push(
          ...planBiosGrubInstall({
            bootImg: b.bootImg,
            coreImg,
            partition: b.partition,
            ...(b.existingMbr ? { existingMbr: b.existingMbr } : {}),
          }),
        );
      }
      if (opts.efi) {
        const e = opts.efi;
        if ("moduleDir" in e) {
          const grubImage = await makeGrubImage({
            ...mk,
            format: "x86_64-efi",
            moduleDir: e.moduleDir,
          });
          files.push(
            ...planGrubEfiFiles({
              binaries: { grubImage, ...(e.vendor ? { vendor: e.vendor } : {}) },
            }),
          );
        } else {
          files.push(
            ...planGrubEfiFiles({
              binaries: "binaries" in e ? e.binaries : e,
              bootFsUuid: opts.bootFsUuid,
              prefix: `/${grubDir}`,
            }),
          );
        }
      }
      return { backend: "grub", files, rawWrites };
    },
    async apply(plan, targets, options = {}) {
      await placeFiles(plan.files, targets, options);
      if (plan.rawWrites.length > 0) {
        if (!targets.disk)
          throw notFound("the plan has raw writes (BIOS) but no disk image was given", {
            op: "grub.apply",
          });
        await applyRawWrites(targets.disk, plan.rawWrites, options);
      }
    },
    async listEntries(targets, options = {}) {
      const fs = options.fs ?? nodeBootFs;
      return sortBootEntries(
        await readEntriesDir(
          fs,
          path.join(need(targets, "boot"), "loader", "entries"),
          options.signal,
        ),
      );
    },
    async readDefault(targets, options = {}) {
      const fs = options.fs ?? nodeBootFs;
      const env = await readEnv(fs, targets);
      const next = env.get("next_entry") || env.get("saved_entry");
      if (next) return next;
      const cfg = new TextDecoder().decode(
        await fs.readFile(path.join(need(targets, "boot"), grubDir, "grub.cfg")),
      );
      const m = /^set default=(?:'([^']*)'|(\S+))$/m.exec(cfg);
      return m ? (m[1] ?? m[2] ?? null) : null;
    },
    async setDefault(targets, id, options = {}) {
      const fs = options.fs ?? nodeBootFs;
      findEntry(await backend.listEntries(targets, options), id);
      const env = await readEnv(fs, targets);
      env.set(options.oneShot ? "next_entry" : "saved_entry", id);
      await fs.mkdir(path.dirname(envPath(targets)), { recursive: true });
      await writeAtomic(fs, envPath(targets), serializeGrubenv(env));
    },
  };
  return backend;
}

/** systemd-boot backend options. */
export interface SystemdBootBackendOptions {
  /** `systemd-bootx64.efi` (from the image). */
  efiBinary: string;
  /** Where entries go: `"esp"` (default) or `"boot"` (XBOOTLDR). */
  entriesOn?: PartitionRole;
  /** Extra loader.conf settings. */
  loader?: Omit<LoaderConf, "default" | "timeout">;
  /** efivarfs directory of a running system; without it a one-shot default is `UNSUPPORTED`. */
  efivarsDir?: string;
}

/** Minimal fnmatch (`*`, `?`, `[…]`), case-insensitive as systemd-boot matches ids. */
function globToRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] ?? "";
    if (c === "*") re += ".*";
    else if (c === "?") re += ".";
    else if (c === "[") {
      const end = glob.indexOf("]", i + 1);
      if (end < 0) re += "\\[";
      else {
        re += `[${glob.slice(i + 1, end).replace(/\\/g, "\\\\")}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\/]/g, "\\$&");
  }
  return new RegExp(`^${re}$`, "i");
}

/** A systemd-boot {@link BootloaderBackend}. */
export function systemdBootBackend(opts: SystemdBootBackendOptions): BootloaderBackend {
  const on = opts.entriesOn ?? "esp";
  const loaderConfPath = (t: BootloaderTargets): string =>
    path.join(need(t, "esp"), "loader", "loader.conf");
  const backend: BootloaderBackend = {
    name: "systemd-boot",
    async plan(install) {
      const sorted = sortBootEntries(install.entries);
      const def =
        install.defaultEntry === undefined ? undefined : findEntry(sorted, install.defaultEntry);
      const files = planSystemdBoot({
        efiBinary: opts.efiBinary,
        entries: install.entries,
        entriesOn: on,
        loader: {
          ...opts.loader,
          timeout: install.timeout ?? 0,
          ...(def ? { default: defaultPatternFor(def) } : {}),
        },
      });
      return {
        backend: "systemd-boot",
        files: [...(install.files ?? []), ...files],
        rawWrites: [],
      };
    },
    async apply(plan, targets, options = {}) {
      await placeFiles(plan.files, targets, options);
    },
    async listEntries(targets, options = {}) {
      const fs = options.fs ?? nodeBootFs;
      const dirs = [
        ...new Set([targets.esp, targets.boot].filter((d): d is string => d !== undefined)),
      ];
      const all: BlsEntry[] = [];
      for (const d of dirs)
        all.push(...(await readEntriesDir(fs, path.join(d, "loader", "entries"), options.signal)));
      return sortBootEntries(all);
    },
    async readDefault(targets, options = {}) {
      const fs = options.fs ?? nodeBootFs;
      const entries = await backend.listEntries(targets, options);
      let conf: LoaderConf = {};
      try {
        conf = parseLoaderConf(
          new TextDecoder().decode(await fs.readFile(loaderConfPath(targets))),
        );
      } catch (err) {
        if ((err as { code?: string }).code !== "ENOENT") throw err;
      }
      const pick =
        conf.default && conf.default !== "@saved"
          ? entries.find((e) => globToRegExp(conf.default ?? "").test(e.fileName))
          : undefined;
      const e = pick ?? entries[0];
      return e ? parseEntryFileName(e.fileName).id : null;
    },
    async setDefault(targets, id, options = {}) {
      const fs = options.fs ?? nodeBootFs;
      const entry = findEntry(await backend.listEntries(targets, options), id);
      if (options.oneShot) {
        if (!opts.efivarsDir) throw oneShotOfflineError();
        await fs.writeFile(
          loaderEfiVariablePath(opts.efivarsDir, "LoaderEntryOneShot"),
          encodeLoaderEfiVariable(entry.fileName),
        );
        return;
      }
      let conf: LoaderConf = {};
      try {
        conf = parseLoaderConf(
          new TextDecoder().decode(await fs.readFile(loaderConfPath(targets))),
        );
      } catch (err) {
        if ((err as { code?: string }).code !== "ENOENT") throw err;
      }
      conf.default = defaultPatternFor(entry);
      await fs.mkdir(path.dirname(loaderConfPath(targets)), { recursive: true });
      await writeAtomic(fs, loaderConfPath(targets), renderLoaderConf(conf));
    },
  };
  return backend;
}
