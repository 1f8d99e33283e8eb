import { access, copyFile, type FileHandle, open, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { StringDecoder } from "node:string_decoder";
import { ImageModeError, isImageModeError } from "@imagemode/core";
import { spawnGuarded, stopGuarded } from "./internal/children.js";
import { tempDir } from "./temp-dir.js";
import { requireTool } from "./tools.js";

/** What a finished boot left behind. */
export interface BootResult {
  /** The serial console output (`\r` removed). */
  log: string;
  /** Milliseconds from starting QEMU until the boot was judged (the last attempt). */
  durationMs: number;
  /**
   * How many times the boot was restarted because the kernel panicked in its early timer
   * check ("IO-APIC + timer doesn't work"), which TCG on a loaded host can fail (0 usually).
   */
  retries: number;
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
  /** Where QEMU writes the serial console (kept afterwards); default: a temp file, removed. */
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
  /** Keep what the VM writes to its disks (no `-snapshot`): for journeys over several boots. */
  persist?: boolean;
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

/** The kernel's early IO-APIC timer check fails when TCG is starved of CPU: a host artifact. */
const TCG_TIMER_PANIC = "IO-APIC + timer doesn't work";
const MAX_RETRIES = 2;

export async function retryingTimerPanic(
  attempt: () => Promise<Omit<BootResult, "retries">>,
): Promise<BootResult> {
  for (let retries = 0; ; retries++) {
    try {
      return { ...(await attempt()), retries };
    } catch (err) {
      const log = isImageModeError(err) ? err.data.log : undefined;
      if (retries >= MAX_RETRIES || typeof log !== "string" || !log.includes(TCG_TIMER_PANIC))
        throw err;
    }
  }
}

/** Reads what QEMU appends to the serial log file, from where the last call stopped. */
class SerialTail {
  private offset = 0;
  private readonly decoder = new StringDecoder("utf8");
  private readonly buf = Buffer.alloc(64 * 1024);
  constructor(private readonly fh: FileHandle) {}
  async read(): Promise<string> {
    let text = "";
    for (;;) {
      const { bytesRead } = await this.fh.read(this.buf, 0, this.buf.length, this.offset);
      if (bytesRead === 0) return text;
      this.offset += bytesRead;
      text += this.decoder.write(this.buf.subarray(0, bytesRead));
    }
  }
}

async function runQemu(
  args: string[],
  options: BootCommonOptions & { persist?: boolean },
  what: string,
): Promise<Omit<BootResult, "retries">> {
  requireTool("qemu-system-x86_64");
  requireTool("timeout");
  const timeoutMs = options.timeoutMs ?? 120_000;
  const work = await tempDir("imagemode-qemu-");
  // The serial console goes to a file, never to a pipe: on stdio QEMU drops console bytes
  // when the reader falls behind (seen on a loaded host), a file write never does.
  const serialFile = options.logFile ?? join(work.path, "serial.log");
  if (serialFile.includes(",")) {
    await work.cleanup();
    throw new ImageModeError(
      "INVALID_ARGUMENT",
      `log file path must not contain a comma: ${serialFile}`,
      { op: "testkit.boot" },
    );
  }
  await writeFile(serialFile, "");
  const fh = await open(serialFile, "r");
  const serial = new SerialTail(fh);
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
    "-serial",
    `file:${serialFile}`,
    "-monitor",
    "none",
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
    {
      stdout: "pipe",
      stderr: "pipe",
    },
  );
  let log = "";
  let output = "";
  let pending = "";
  let exitStatus: number | null | undefined;
  child.stdout!.setEncoding("utf8");
  child.stdout!.on("data", (chunk: string) => {
    output += chunk;
  });
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (chunk: string) => {
    output += chunk;
  });
  const exited = new Promise<void>((resolve) => {
    child.on("exit", (status) => {
      exitStatus = status;
      resolve();
    });
    child.on("error", (e) => {
      output += `cannot start: ${e.message}\n`;
      exitStatus = -1;
      resolve();
    });
  });
  const consume = (text: string) => {
    if (!text) return;
    const clean = text.replace(/\r/g, "");
    log += clean;
    if (options.onConsole) {
      pending += clean;
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) options.onConsole(line);
    }
  };
  const fail = (code: "HOST" | "ABORTED", why: string) =>
    new ImageModeError(
      code,
      `${what}: ${why}\n--- serial console (tail) ---\n${tail(log)}${output.trim() ? `\n--- qemu output ---\n${tail(output, 10)}` : ""}`,
      { op: "testkit.boot", data: { log, durationMs: Date.now() - started } },
    );
  const deadline = started + timeoutMs;
  let verdict: Error | undefined;
  let durationMs = 0;
  try {
    // Success with a marker is judged while the guest runs; everything else when QEMU
    // exits (panic=-1, poweroff -f and -no-reboot make every guest outcome end it).
    for (;;) {
      const done = exitStatus !== undefined;
      consume(await serial.read());
      if (options.expect !== undefined && matches(log, options.expect)) break;
      if (done) {
        if (options.expect !== undefined)
          verdict = fail(
            "HOST",
            `qemu exited (status ${exitStatus}) without printing ${options.expect}`,
          );
        else if (FAILURE.test(log)) verdict = fail("HOST", "the guest reported a failure");
        else if (!FINISHED.test(log))
          verdict = fail(
            "HOST",
            `qemu exited (status ${exitStatus}) before IMAGEMODE-DONE or power-down`,
          );
        break;
      }
      if (options.signal?.aborted) {
        verdict = fail("ABORTED", "aborted");
        break;
      }
      if (Date.now() > deadline) {
        verdict = fail(
          "HOST",
          `no ${options.expect ?? "IMAGEMODE-DONE / power-down"} within ${timeoutMs} ms`,
        );
        break;
      }
      await Promise.race([exited, new Promise((r) => setTimeout(r, 50))]);
    }
    if (!verdict && options.persist && exitStatus === undefined) {
      // The marker came while the guest runs; the fixture's init still has `sync; poweroff -f`
      // to do. Stopping QEMU now could drop the guest's last writes, and with `persist` the next
      // boot would see a half-written disk: let the guest power off (within the deadline).
      const grace = Math.max(0, Math.min(deadline - Date.now(), 120_000));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, grace)))]);
      clearTimeout(timer);
      consume(await serial.read());
    }
  } finally {
    if (pending && options.onConsole) options.onConsole(pending);
    durationMs = Date.now() - started;
    await stopGuarded(child);
    await fh.close();
    await work.cleanup();
  }
  if (verdict) throw verdict;
  return { log, durationMs };
}

function withConsole(append: string): string {
  let cmdline = append.trim();
  if (!/(^|\s)console=/.test(cmdline)) cmdline += " console=ttyS0,115200";
  if (!/(^|\s)panic=/.test(cmdline)) cmdline += " panic=-1";
  // skip the early IO-APIC timer check that a CPU-starved TCG guest can fail (see retries)
  if (!/(^|\s)no_timer_check(\s|$)/.test(cmdline)) cmdline += " no_timer_check";
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
  return retryingTimerPanic(() => runQemu(args, options, `boot of ${options.kernel}`));
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
  if (options.firmware === "uefi") {
    await access(OVMF_CODE).catch(() => {
      throw new ImageModeError("HOST", `${OVMF_CODE} is missing (Debian package ovmf)`, {
        op: "testkit.bootDisk",
      });
    });
  }
  const work = await tempDir("imagemode-boot-");
  try {
    return await retryingTimerPanic(async () => {
      const args: string[] = [];
      if (options.firmware === "uefi") {
        const vars = join(work.path, "OVMF_VARS.fd");
        await copyFile(OVMF_VARS, vars); // fresh variables for every attempt
        args.push(
          "-drive",
          `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`,
          "-drive",
          `if=pflash,format=raw,unit=1,file=${vars}`,
        );
      }
      args.push(...driveArgs(path, options.format ?? formatOf(path)));
      for (const d of options.extraDrives ?? []) args.push(...driveArgs(d));
      if (!options.persist) args.push("-snapshot");
      return runQemu(args, options, `${options.firmware} boot of ${path}`);
    });
  } finally {
    await work.cleanup();
  }
}
