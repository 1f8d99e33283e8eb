/**
 * ostree's boot directory: `loader.0/` and `loader.1/` hold complete sets of BLS entries, and the
 * `loader` symlink names the live one. A new set is written to the other directory, synced, and a
 * temp symlink renamed over `loader` — the one atomic step that switches every bootloader reading
 * `loader/entries` (or `loader/grub.cfg` through `grub2/grub.cfg -> ../loader/grub.cfg`).
 */
import * as path from "node:path";
import {
  ImageModeError,
  invalidArgument,
  invalidState,
  type OpOptions,
  parseError,
  throwIfAborted,
  toImageModeError,
} from "@imagemode/core";
import {
  type BlsEntry,
  createBlsEntry,
  getBlsOptions,
  getBlsValue,
  parseBlsEntry,
  serializeBlsEntry,
} from "./bls.js";
import { type BootFs, nodeBootFs } from "./fs.js";
import { KernelArgs } from "./kernel-args.js";
import { strverscmp } from "./version.js";

/** A bootversion: which of `loader.0` / `loader.1` is live. */
export type BootVersion = 0 | 1;

/** The parts of an `ostree=` kernel argument. */
export interface OstreeBootArg {
  bootversion: BootVersion;
  stateroot: string;
  bootcsum: string;
  bootserial: number;
}

const OSTREE_ARG_RE = /^\/ostree\/boot\.([01])\/([^/]+)\/([^/]+)\/([0-9]+)$/;

/** The value ostree puts after `ostree=`: `/ostree/boot.<v>/<stateroot>/<bootcsum>/<serial>`. */
export function ostreeBootPath(arg: OstreeBootArg): string {
  if (
    !/^[^/\s]+$/.test(arg.stateroot) ||
    !/^[0-9a-f]{64}$/.test(arg.bootcsum) ||
    !Number.isInteger(arg.bootserial) ||
    arg.bootserial < 0
  ) {
    throw invalidArgument("invalid ostree= components", { op: "ostree.bootArg", data: { ...arg } });
  }
  return `/ostree/boot.${arg.bootversion}/${arg.stateroot}/${arg.bootcsum}/${arg.bootserial}`;
}

/** Parses the value of an `ostree=` argument (ostree's own regex). */
export function parseOstreeBootPath(value: string): OstreeBootArg {
  const m = OSTREE_ARG_RE.exec(value);
  if (!m)
    throw parseError(`invalid ostree= argument ${JSON.stringify(value)}`, {
      op: "ostree.bootArg",
      data: { value },
    });
  return {
    bootversion: Number(m[1]) as BootVersion,
    stateroot: m[2] ?? "",
    bootcsum: m[3] ?? "",
    bootserial: Number(m[4]),
  };
}

/** One deployment as the boot directory needs it, in deployment-list order (index 0 = default). */
export interface OstreeBootDeployment {
  stateroot: string;
  /** SHA-256 hex of vmlinuz ‖ initramfs (‖ devicetree). */
  bootcsum: string;
  /** Kernel version (`6.1.0-…`), naming `vmlinuz-<kver>` and `initramfs-<kver>.img`. */
  kver: string;
  /** Kernel arguments; any `ostree=` in them is replaced in place. */
  kargs: string;
  /** os-release `PRETTY_NAME` (else `ID`) of the deployment. */
  osName: string;
  /** The commit's `version` metadata, appended to the title when not already in it. */
  version?: string;
  /** Default true. Without one, ostree adds `init=…/usr/lib/ostree/ostree-prepare-root`. */
  hasInitramfs?: boolean;
  /** Adds `devicetree /ostree/…/devicetree-<kver>`. */
  hasDevicetree?: boolean;
}

/** Options for {@link planOstreeEntries}. */
export interface OstreeEntriesOptions {
  /** The bootversion the entries are written for (the new one). */
  bootversion: BootVersion;
  /** `"stateroot"` (ostree 2022.7: `ostree-<K>-<stateroot>.conf`, default) or `"plain"` (≥2024.5: `ostree-<K>.conf`). */
  naming?: "stateroot" | "plain";
  /** Boot counting: new entries get `+<tries>` (systemd-boot renames them on each attempt). */
  bootCountingTries?: number;
  /** Prefix for `linux`/`initrd` paths: `""` when /boot is its own partition (default), `/boot` otherwise. */
  bootPrefix?: string;
}

/**
 * The BLS entries ostree writes for a deployment list: file `ostree-<K>-<stateroot>.conf` with
 * K = count − index, `title` `<osName>[ <version>] (ostree[:<stateroot>]:<index>)`, `version` K,
 * `options` with `ostree=/ostree/boot.<v>/<stateroot>/<bootcsum>/<bootserial>`, `linux`, `initrd`.
 * Byte-identical to ostree 2022.7's output for the same inputs.
 */
export function planOstreeEntries(
  deployments: readonly OstreeBootDeployment[],
  options: OstreeEntriesOptions,
): BlsEntry[] {
  const multi = new Set(deployments.map((d) => d.stateroot)).size > 1;
  const serials = new Map<string, number>();
  const prefix = options.bootPrefix ?? "";
  return deployments.map((d, index) => {
    const bootserial = serials.get(d.bootcsum) ?? 0;
    serials.set(d.bootcsum, bootserial + 1);
    const k = deployments.length - index;
    const bootPath = ostreeBootPath({
      bootversion: options.bootversion,
      stateroot: d.stateroot,
      bootcsum: d.bootcsum,
      bootserial,
    });
    const kargs = KernelArgs.parse(d.kargs).replace(`ostree=${bootPath}`);
    if (d.hasInitramfs === false)
      kargs.replace(`init=${bootPath}/usr/lib/ostree/ostree-prepare-root`);
    let title = d.osName;
    if (d.version && !title.includes(d.version)) title += ` ${d.version}`;
    title += ` (ostree${multi ? `:${d.stateroot}` : ""}:${index})`;
    const dir = `${prefix}/ostree/${d.stateroot}-${d.bootcsum}`;
    const stem = options.naming === "plain" ? `ostree-${k}` : `ostree-${k}-${d.stateroot}`;
    const tries = options.bootCountingTries;
    const fileName = tries === undefined ? `${stem}.conf` : `${stem}+${tries}.conf`;
    return createBlsEntry(fileName, {
      title,
      version: String(k),
      options: kargs.toString(),
      ...(d.hasDevicetree ? { devicetree: `${dir}/devicetree-${d.kver}` } : {}),
      linux: `${dir}/vmlinuz-${d.kver}`,
      ...(d.hasInitramfs === false ? {} : { initrd: `${dir}/initramfs-${d.kver}.img` }),
    });
  });
}

/** Sorts ostree entries as ostree reads them: by `version`, `strverscmp`, descending. */
export function sortOstreeEntries(entries: readonly BlsEntry[]): BlsEntry[] {
  return [...entries].sort(
    (a, b) => -strverscmp(getBlsValue(a, "version") ?? "", getBlsValue(b, "version") ?? ""),
  );
}

/** The `ostree=` argument of an entry, parsed. */
export function entryOstreeBootPath(entry: BlsEntry): OstreeBootArg {
  const v = KernelArgs.parse(getBlsOptions(entry)).get("ostree");
  if (v === undefined)
    throw parseError(`${entry.fileName}: No ostree= kernel argument found`, {
      op: "ostree.bootArg",
      data: { fileName: entry.fileName },
    });
  return parseOstreeBootPath(v);
}

/** Options with an injected file system. */
export interface BootDirOptions extends OpOptions {
  fs?: BootFs;
}

/**
 * The live bootversion of a /boot directory: target of `loader` (`loader.0` → 0, `loader.1` → 1);
 * no `loader` → 0, as ostree assumes.
 *
 * @throws ImageModeError `INVALID_STATE` when `loader` points anywhere else.
 */
export async function readBootVersion(
  bootDir: string,
  options: BootDirOptions = {},
): Promise<BootVersion> {
  const fs = options.fs ?? nodeBootFs;
  let target: string;
  try {
    target = await fs.readlink(path.join(bootDir, "loader"));
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") return 0;
    throw toImageModeError(err, "ostree.bootversion", { bootDir });
  }
  if (target === "loader.0") return 0;
  if (target === "loader.1") return 1;
  throw invalidState(`Invalid target '${target}' in boot/loader`, {
    op: "ostree.bootversion",
    data: { bootDir, target },
  });
}

/**
 * Reads every `ostree-*.conf` of a bootversion (default: the live one), sorted as ostree sorts them.
 * Other entries (other OSes) are ignored.
 */
export async function readOstreeEntries(
  bootDir: string,
  options: BootDirOptions & { bootversion?: BootVersion } = {},
): Promise<BlsEntry[]> {
  const fs = options.fs ?? nodeBootFs;
  const v = options.bootversion ?? (await readBootVersion(bootDir, options));
  const dir = path.join(bootDir, `loader.${v}`, "entries");
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") return [];
    throw toImageModeError(err, "ostree.readEntries", { dir });
  }
  const out: BlsEntry[] = [];
  for (const name of names.filter((n) => n.startsWith("ostree-") && n.endsWith(".conf"))) {
    throwIfAborted(options.signal, "ostree.readEntries");
    const text = new TextDecoder().decode(await fs.readFile(path.join(dir, name)));
    out.push(parseBlsEntry(text, name));
  }
  return sortOstreeEntries(out);
}

/** A planned bootversion switch: plain data, applied by {@link applyBootSwap}. */
export interface BootSwapPlan {
  currentBootversion: BootVersion;
  newBootversion: BootVersion;
  /** Files under `loader.<new>/` (e.g. `entries/ostree-1-os.conf`, `grub.cfg`). */
  files: { path: string; content: string | Uint8Array }[];
}

/**
 * Plans writing `entries` (and bootloader files such as `grub.cfg`) as the new bootversion
 * `1 − current`.
 */
export function planBootSwap(
  currentBootversion: BootVersion,
  entries: readonly BlsEntry[],
  extraFiles: { path: string; content: string | Uint8Array }[] = [],
): BootSwapPlan {
  const names = new Set<string>();
  for (const e of entries) {
    if (names.has(e.fileName))
      throw invalidArgument(`two entries named ${e.fileName}`, { op: "ostree.planBootSwap" });
    names.add(e.fileName);
  }
  return {
    currentBootversion,
    newBootversion: currentBootversion === 0 ? 1 : 0,
    files: [
      ...entries.map((e) => ({ path: `entries/${e.fileName}`, content: serializeBlsEntry(e) })),
      ...extraFiles,
    ],
  };
}

/** The placed files a plan amounts to on an empty /boot (for image builders): `loader.N/…`, `loader`, `boot`. */
export function bootSwapFiles(plan: BootSwapPlan): import("./placement.js").PlacedFile[] {
  const dir = `loader.${plan.newBootversion}`;
  return [
    { kind: "dir", partition: "boot", path: `${dir}/entries`, mode: 0o755 },
    ...plan.files.map((f) => ({
      kind: "file" as const,
      partition: "boot" as const,
      path: `${dir}/${f.path}`,
      mode: 0o644,
      content: f.content,
    })),
    { kind: "symlink", partition: "boot", path: "boot", target: "." },
    { kind: "symlink", partition: "boot", path: "loader", target: dir },
  ];
}

/**
 * Applies a {@link BootSwapPlan} to a /boot directory, crash-safely: `rm -rf loader.<new>`; write
 * every file and fsync it; fsync the directories; `boot -> .`; `loader.tmp -> loader.<new>`;
 * `rename(loader.tmp, loader)` (the atomic commit point); fsync /boot. With `cleanup`, the old
 * `loader.<current>` is removed afterwards (ostree's cleanup does the same).
 *
 * @throws ImageModeError `CONFLICT` when the live bootversion is not the plan's `currentBootversion`.
 */
export async function applyBootSwap(
  bootDir: string,
  plan: BootSwapPlan,
  options: BootDirOptions & { cleanup?: boolean } = {},
): Promise<void> {
  const fs = options.fs ?? nodeBootFs;
  const op = "ostree.bootSwap";
  const live = await readBootVersion(bootDir, options);
  if (live !== plan.currentBootversion) {
    throw new ImageModeError(
      "CONFLICT",
      `boot/loader is loader.${live}, the plan was made for loader.${plan.currentBootversion}`,
      { op, data: { bootDir } },
    );
  }
  const dir = path.join(bootDir, `loader.${plan.newBootversion}`);
  try {
    await fs.rm(dir, { recursive: true, force: true });
    await fs.mkdir(path.join(dir, "entries"), { recursive: true, mode: 0o755 });
    const dirs = new Set<string>([dir, path.join(dir, "entries")]);
    for (const f of plan.files) {
      throwIfAborted(options.signal, op);
      const dest = path.join(dir, f.path);
      if (!dest.startsWith(dir + path.sep))
        throw invalidArgument(`path escapes loader directory: ${f.path}`, { op });
      await fs.mkdir(path.dirname(dest), { recursive: true });
      dirs.add(path.dirname(dest));
      await fs.writeFile(dest, f.content, { mode: 0o644 });
      await fs.fsync(dest);
    }
    for (const d of [...dirs].sort().reverse()) await fs.fsync(d);
    throwIfAborted(options.signal, op);
    try {
      await fs.symlink(".", path.join(bootDir, "boot"));
    } catch (err) {
      if ((err as { code?: string }).code !== "EEXIST") throw err;
    }
    const tmp = path.join(bootDir, "loader.tmp");
    await fs.rm(tmp, { force: true });
    await fs.symlink(`loader.${plan.newBootversion}`, tmp);
    await fs.rename(tmp, path.join(bootDir, "loader"));
    await fs.fsync(bootDir);
    options.onProgress?.({
      type: "done",
      task: op,
      description: `boot/loader -> loader.${plan.newBootversion}`,
    });
    if (options.cleanup) {
      await fs.rm(path.join(bootDir, `loader.${plan.currentBootversion}`), {
        recursive: true,
        force: true,
      });
      await fs.fsync(bootDir);
    }
  } catch (err) {
    throw toImageModeError(err, op, { bootDir });
  }
}
