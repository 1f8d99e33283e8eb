/**
 * Kernel command lines (`customizations.kernel.append`) as argument lists.
 */
import { splitKernelCommandLine } from "@imagemode/core";

/**
 * Splits a kernel command line into arguments (double quotes group, as the kernel reads them).
 * Lenient: an unterminated quote keeps the rest of the line as the last argument.
 */
export function splitKernelArgs(cmdline: string): string[] {
  return splitKernelCommandLine(cmdline, { strict: false });
}
