import { exitCodeFor, toImageModeError } from "@imagemode/core";
import type { TextStream } from "./progress.js";

/** The streams a CLI writes to. */
export interface CliIo {
  stdout: TextStream;
  stderr: TextStream;
}

/** The part of a commander `Command` that {@link runCli} uses (built with `.exitOverride()`). */
export interface CliProgram {
  parseAsync(argv: readonly string[], options: { from: "user" | "node" }): Promise<unknown>;
}

/** How a CLI reports a failed command. */
export interface ErrorStyle {
  /** Where the `{"error": …}` document goes under `--json` (default `stdout`). */
  json?: "stdout" | "stderr";
  /** JSON indentation of that document (default 2; 0: one line). */
  indent?: number;
  /** Prefix of the text line `<label>: <message>` on stderr (default the CLI's name). */
  label?: string;
  /** Also write the text line under `--json` (default true). */
  textWithJson?: boolean;
}

/** What {@link reportCliError} needs. */
export interface ReportOptions {
  /** The CLI's name (`imagemode-disk`): default prefix of the error line. */
  name: string;
  /** `op` given to errors that are not `ImageModeError`s yet. */
  op?: string;
  /** Whether `--json` was given. */
  json: boolean;
  io?: CliIo;
  errors?: ErrorStyle;
}

/**
 * Prints `err` the CLI way (a `{"error": …}` document under `--json`, `<name>: <message>` on
 * stderr) and returns its exit status, core's `exitCodeFor(code)`.
 */
export function reportCliError(err: unknown, options: ReportOptions): number {
  const io = options.io ?? { stdout: process.stdout, stderr: process.stderr };
  const style = options.errors ?? {};
  const e = toImageModeError(err, options.op);
  if (options.json) {
    const indent = style.indent ?? 2;
    const doc = indent
      ? JSON.stringify({ error: e.toJSON() }, null, indent)
      : JSON.stringify({ error: e.toJSON() });
    (style.json === "stderr" ? io.stderr : io.stdout).write(`${doc}\n`);
  }
  if (!options.json || (style.textWithJson ?? true))
    io.stderr.write(`${style.label ?? options.name}: ${e.message}\n`);
  return exitCodeFor(e.code);
}

/** What {@link runCli} runs. */
export interface RunCliOptions {
  /** The CLI's name (`imagemode-disk`). */
  name: string;
  /** `op` of errors that are not `ImageModeError`s yet (e.g. `disk.cli`). */
  op?: string;
  /** Builds the commander program (with `.exitOverride()`, so usage errors throw). */
  build(): CliProgram;
  argv: readonly string[];
  /** How commander reads `argv` (default `user`: without node and the script). */
  from?: "user" | "node";
  io?: CliIo;
  /** Whether `--json` was given (default: `argv` contains `--json`). */
  json?: () => boolean;
  /** The exit status after a successful parse (default `process.exitCode` when a number, else 0). */
  status?(): number;
  errors?: ErrorStyle;
}

/**
 * Parses `argv` with the program and resolves the exit status: the command's status; 0 for
 * `--help`/`--version`, 2 for usage errors (commander's own message is already printed);
 * otherwise the error is printed by {@link reportCliError} and mapped with `exitCodeFor`.
 *
 * ```ts
 * process.exitCode = await runCli({ name: "imagemode-x", op: "x.cli", build: buildProgram, argv: process.argv.slice(2) });
 * ```
 */
export async function runCli(options: RunCliOptions): Promise<number> {
  const program = options.build();
  try {
    await program.parseAsync(options.argv, { from: options.from ?? "user" });
    if (options.status) return options.status();
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (e) {
    const ce = e as { code?: unknown; exitCode?: unknown };
    if (typeof ce.code === "string" && ce.code.startsWith("commander."))
      return ce.exitCode === 0 ? 0 : 2;
    const json = options.json ? options.json() : options.argv.includes("--json");
    return reportCliError(e, { ...options, json });
  }
}
