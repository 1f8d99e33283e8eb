import { parseError } from "./errors.js";

/** Options for {@link splitKernelCommandLine}. */
export interface SplitKernelCommandLineOptions {
  /** Throw `PARSE` for an unterminated double quote (default true); false keeps the tail as-is. */
  strict?: boolean;
}

/**
 * Splits a kernel command line into arguments as the kernel reads it: whitespace separates,
 * double quotes group (`k="a b"` is one argument) and stay in the returned text. Shared by every
 * package that reads kernel arguments (bootloader entries, blueprint `kernel.append`).
 */
export function splitKernelCommandLine(
  cmdline: string,
  options: SplitKernelCommandLineOptions = {},
): string[] {
  const out: string[] = [];
  let cur = "";
  let quoted = false;
  let any = false;
  for (const ch of cmdline) {
    if (ch === '"') {
      quoted = !quoted;
      cur += ch;
      any = true;
    } else if (!quoted && /\s/.test(ch)) {
      if (any) out.push(cur);
      cur = "";
      any = false;
    } else {
      cur += ch;
      any = true;
    }
  }
  if (quoted && (options.strict ?? true)) {
    throw parseError(`unterminated quote in kernel command line: ${cmdline}`, {
      op: "kargs.parse",
      data: { cmdline },
    });
  }
  if (any) out.push(cur);
  return out;
}
