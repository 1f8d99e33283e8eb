/**
 * Kernel command lines (`customizations.kernel.append`) as argument lists.
 */

/** Splits a kernel command line into arguments (double quotes group, as the kernel reads them). */
export function splitKernelArgs(cmdline: string): string[] {
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
  if (any) out.push(cur);
  return out;
}
