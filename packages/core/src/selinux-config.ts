import { parseError } from "./errors.js";

/** What `/etc/selinux/config` says (see selinux_config(5)). */
export interface SelinuxConfig {
  /** `SELINUX=`: `enforcing`, `permissive` or `disabled` (as written; `undefined` when absent). */
  mode?: string;
  /** `SELINUXTYPE=`: the policy name, the directory under `/etc/selinux/` (e.g. `targeted`). */
  policyType?: string;
}

/**
 * Parses `/etc/selinux/config` text: `KEY=value` lines, `#` comments and blank lines
 * skipped, surrounding whitespace and one pair of matching quotes around the value dropped;
 * the last assignment of a key wins. A `SELINUXTYPE` that is not a single path component
 * is a `PARSE` error (it names a directory).
 */
export function parseSelinuxConfig(text: string): SelinuxConfig {
  const out: SelinuxConfig = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    if (eq < 0) continue;
    const key = line.slice(0, eq).trim();
    let value = line.slice(eq + 1).trim();
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.at(-1) === value[0])
      value = value.slice(1, -1);
    if (key === "SELINUX") out.mode = value;
    else if (key === "SELINUXTYPE") {
      if (value === "" || value === "." || value === ".." || value.includes("/"))
        throw parseError(`invalid SELINUXTYPE ${JSON.stringify(value)} in selinux config`, {
          op: "core.parseSelinuxConfig",
          data: { policyType: value },
        });
      out.policyType = value;
    }
  }
  return out;
}

/** The paths (relative to the `etc` directory that holds `selinux/`) of a policy's file contexts. */
export interface SelinuxPolicyFiles {
  config: string;
  fileContexts: string;
  homedirs: string;
  local: string;
  subsDist: string;
  subs: string;
}

/**
 * Where a policy's file-context files are, relative to an `etc` directory: in an ostree
 * commit that is `usr/etc`, in a booted system `/etc`. E.g. for `targeted`:
 * `selinux/targeted/contexts/files/file_contexts` (+ `.homedirs`, `.local`, `.subs_dist`, `.subs`).
 */
export function selinuxPolicyFiles(policyType: string): SelinuxPolicyFiles {
  const fc = `selinux/${policyType}/contexts/files/file_contexts`;
  return {
    config: "selinux/config",
    fileContexts: fc,
    homedirs: `${fc}.homedirs`,
    local: `${fc}.local`,
    subsDist: `${fc}.subs_dist`,
    subs: `${fc}.subs`,
  };
}
