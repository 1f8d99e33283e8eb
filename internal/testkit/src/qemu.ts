import { access, copyFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ImageModeError } from "@imagemode/core";
import { spawnGuarded, stopGuarded } from "./internal/children.js";
import { tempDir } from "./temp-dir.js";
import { requireTool } from "./tools.js";

/** What a finished boot left behind. */
export interface BootResult {
  /** The serial console output (`\r` removed). */
  log: string;
  /** Milliseconds from starting QEMU until the boot was judged. */
  durationMs: number;
}

/** Options every boot takes. */
export interface BootCommonOptions {
  /** Hard limit for the whole boot (default 120 000 ms); on expiry the promise rejects with the log's tail. */
  timeoutMs?: number;
  /**
   * Resolve as soon as this shows on the console (QEMU is then stopped). Without it the boot
   * resolves when the guest prints `IMAGEMODE-DONE` or powers down.
   */
  expect?: string | RegExp;
  /** Also write the serial console to this file. */
  logFile?: string;
  /** Called with each console line as it arrives (for narration; libraries never print). */
  onConsole?: (line: string) => void;
  /** Guest memory in MiB (default 512). */
  memoryMb?: number;
  signal?: AbortSignal;
}

/** Options of {@link bootKernel}. */
export interface BootKernelOptions extends BootCommonOptions {
  kernel: string;
  initrd: string;
  /** Kernel command line; `console=ttyS0,115200` and `panic=-1` are added when missing. */
  append: string;
  /** Disk images attached as virtio disks (`/dev/vda`, `/dev/vdb`, …); `.qcow2` by name, raw otherwise. */
  drives?: string[];
}

/** Options of {@link bootDisk}. */
export interface BootDiskOptions extends BootCommonOptions {
  /** `"uefi"`: OVMF (4M CODE + a private copy of VARS); `"bios"`: SeaBIOS. */
  firmware: "uefi" | "bios";
  /** Default: `qcow2` when the name ends in `.qcow2`, `raw` otherwise. */
  format?: "raw" | "qcow2";
  /** More disks after the boot disk. */
  extraDrives?: string[];
}

const OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd";
const FAILURE = /IMAGEMODE-INITRAMFS-FAIL|Kernel panic - not syncing/;
const FINISHED = /IMAGEMODE-DONE|reboot: Power down/;

function formatOf(path: string): "raw" | "qcow2" {
  return path.endsWith(".qcow2") ? "qcow2" : "raw";
}

function driveArgs(path: string, format: "raw" | "qcow2" = formatOf(path)): string[] {
  if (path.includes(","))
    throw new ImageModeError("INVALID_ARGUMENT", `disk path must not contain a comma: ${path}`, {
      op: "testkit.boot",
    });
  return ["-drive", `if=virtio,format=${format},file=${path}`];
}

function tail(log: string, lines = 40): string {
  return log.trimEnd().split("\n").slice(-lines).join("\n");
}

function matches(log: string, expect: string | RegExp): boolean {
  if (typeof expect === "string") return log.includes(expect);
  return new RegExp(expect.source, expect.flags.replace("g", "").replace("y", "")).test(log);
}

async function runQemu(
  args: string[],
  options: BootCommonOptions,
  what: string,
): Promise<BootResult> {
  requireTool("qemu-system-x86_64");
  requireTool("timeout");
  const timeoutMs = options.timeoutMs ?? 120_000;
  const qemu = [
    "qemu-system-x86_64",
    "-machine",
    "q35",
    "-accel",
    "tcg", // KVM on the CI hosts is broken; TCG boots in 5-9 s
    "-cpu",
    "max",
    "-smp",
    "1",
    "-m",
    String(options.memoryMb ?? 512),
    "-nographic",
    "-no-reboot",
    "-nic",
    "none",
    ...args,
  ];
  const started = Date.now();
  // `timeout` bounds QEMU even if everything else fails; the guard stops it (via timeout,
  // which passes SIGTERM on) when we are done or when this process dies.
  const child = spawnGuarded(
    "timeout",
    ["-k", "5", String(Math.ceil(timeoutMs / 1000) + 5), ...qemu],
    { stdout: "pipe", stderr: "pipe" },
  );
  let log = "";
  let stderr = "";
  let pending = "";
  return new Promise<BootResult>((resolve, reject) => {
    let settled = false;
    const finish = (err: Error | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      const durationMs = Date.now() - started;
      stopGuarded(child)
        .then(() => (options.logFile ? writeFile(options.logFile, log) : undefined))
        .then(
          () => (err ? reject(err) : resolve({ log, durationMs })),
          (e: unknown) => reject(e),
        );
    };
    const fail = (code: "HOST" | "ABORTED", why: string) =>
      new ImageModeError(
        code,
        `${what}: ${why}\n--- serial console (tail) ---\n${tail(log)}${stderr ? `\n--- qemu stderr ---\n${tail(stderr, 10)}` : ""}`,
        {
          op: "testkit.boot",
          data: { log, durationMs: Date.now() - started },
        },
      );
    const timer = setTimeout(
      () =>
        finish(
          fail(
            "HOST",
            `no ${options.expect ?? "IMAGEMODE-DONE / power-down"} within ${timeoutMs} ms`,
          ),
        ),
      timeoutMs,
    );
    const onAbort = () => finish(fail("ABORTED", "aborted"));
    options.signal?.addEventListener("abort", onAbort, { once: true });
    if (options.signal?.aborted) onAbort();
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (chunk: string) => {
      const text = chunk.replace(/\r/g, "");
      log += text;
      if (options.onConsole) {
        pending += text;
        const lines = pending.split("\n");
        pending = lines.pop() ?? "";
        for (const line of lines) options.onConsole(line);
      }
      // Success with a marker is judged here; everything else when QEMU exits (panic=-1,
      // poweroff -f and -no-reboot make every guest outcome end the process).
      if (options.expect !== undefined && matches(log, options.expect)) finish(undefined);
    });
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.on("error", (e) => finish(fail("HOST", `cannot start qemu: ${e.message}`)));
    child.on("exit", (status) => {
      if (options.expect !== undefined) {
        if (matches(log, options.expect)) finish(undefined);
        else
          finish(fail("HOST", `qemu exited (status ${status}) without printing ${options.expect}`));
      } else if (FAILURE.test(log)) finish(fail("HOST", "the guest reported a failure"));
      else if (FINISHED.test(log)) finish(undefined);
      else
        finish(fail("HOST", `qemu exited (status ${status}) before IMAGEMODE-DONE or power-down`));
    });
  });
}

function withConsole(append: string): string {
  let cmdline = append.trim();
  if (!/(^|\s)console=/.test(cmdline)) cmdline += " console=ttyS0,115200";
  if (!/(^|\s)panic=/.test(cmdline)) cmdline += " panic=-1";
  return cmdline.trim();
}

/**
 * Boots a kernel + initrd directly (`qemu -kernel -initrd -append`, TCG, serial console on
 * stdout, `-no-reboot -nic none`, disks in `-snapshot` mode).
 *
 * @example
 * ```ts
 * const k = await fixtureKernel();
 * const { log } = await bootKernel({ kernel: k.vmlinuz, initrd: k.initramfs, append: "", expect: "IMAGEMODE-INITRAMFS-OK" });
 * ```
 */
export async function bootKernel(options: BootKernelOptions): Promise<BootResult> {
  const args = [
    "-kernel",
    options.kernel,
    "-initrd",
    options.initrd,
    "-append",
    withConsole(options.append),
  ];
  for (const d of options.drives ?? []) args.push(...driveArgs(d));
  if ((options.drives ?? []).length > 0) args.push("-snapshot");
  return runQemu(args, options, `boot of ${options.kernel}`);
}

/**
 * Boots a disk image through real firmware: OVMF (UEFI; the 4M CODE image read-only plus
 * a private copy of the VARS image) or SeaBIOS. The disk is attached as virtio in
 * `-snapshot` mode, so the image file is never changed.
 *
 * @example
 * ```ts
 * const { log } = await bootDisk("disk.raw", { firmware: "uefi", expect: "IMAGEMODE-DONE" });
 * ```
 */
export async function bootDisk(path: string, options: BootDiskOptions): Promise<BootResult> {
  const work = await tempDir("imagemode-boot-");
  try {
    const args: string[] = [];
    if (options.firmware === "uefi") {
      await access(OVMF_CODE).catch(() => {
        throw new ImageModeError("HOST", `${OVMF_CODE} is missing (Debian package ovmf)`, {
          op: "testkit.bootDisk",
        });
      });
      const vars = join(work.path, "OVMF_VARS.fd");
      await copyFile(OVMF_VARS, vars);
      args.push(
        "-drive",
        `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`,
        "-drive",
        `if=pflash,format=raw,unit=1,file=${vars}`,
      );
    }
    args.push(...driveArgs(path, options.format ?? formatOf(path)));
    for (const d of options.extraDrives ?? []) args.push(...driveArgs(d));
    args.push("-snapshot");
    return await runQemu(args, options, `${options.firmware} boot of ${path}`);
  } finally {
    await work.cleanup();
  }
}
