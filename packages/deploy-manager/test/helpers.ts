import { chmod, lstat, mkdir, readdir, readFile, readlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ostreeCli } from "@imagemode/testkit";

/** The source trees of the recorded sysroot sample (ostree-sysroot-sample.txt §1). */
export async function makeSampleTrees(
  dir: string,
): Promise<Record<"v1" | "v2" | "v3" | "v4", string>> {
  const out = {} as Record<"v1" | "v2" | "v3" | "v4", string>;
  for (const v of ["v1", "v2", "v3", "v4"] as const) {
    const t = join(dir, v);
    const kver = v === "v4" ? "6.1.0" : "6.0.0";
    const files: [string, string, number?][] = [
      [
        "usr/bin/hello",
        v === "v3" ? "#!/bin/sh\necho hello v3\n" : "#!/bin/sh\necho hello\n",
        0o755,
      ],
      ["usr/etc/a.conf", v === "v1" ? "a=1\n" : "a=2\n"],
      ["usr/etc/b.conf", "b=1\n"],
      ["usr/etc/c.conf", "c=1\n"],
      ["usr/etc/dir/d.conf", "d=1\n"],
      [
        `usr/lib/modules/${kver}/vmlinuz`,
        v === "v4" ? "kernel 6.1.0 image\n" : "kernel 6.0.0 image\n",
      ],
      [
        `usr/lib/modules/${kver}/initramfs.img`,
        v === "v4" ? "initramfs for 6.1.0 x\n" : "initramfs for 6.0.0 x\n",
      ],
      ["usr/lib/os-release", 'NAME="Test OS"\nID=testos\nPRETTY_NAME="Test OS"\n'],
    ];
    if (v !== "v1") files.push(["usr/etc/new.conf", "new=1\n"]);
    if (v === "v1") files.push(["var/lib/vendor/data", "vendor\n"]);
    for (const [p, c, mode] of files) {
      await mkdir(join(t, p, ".."), { recursive: true });
      await writeFile(join(t, p), c);
      await chmod(join(t, p), mode ?? 0o644);
    }
    out[v] = t;
  }
  return out;
}

/** `ostree commit` with a fixed timestamp so two repositories get the same checksum. */
export async function ostreeCommit(
  repo: string,
  tree: string,
  branch: string,
  extra: string[] = [],
): Promise<string> {
  const { stdout } = await ostreeCli.run([
    "commit",
    `--repo=${repo}`,
    `--branch=${branch}`,
    `--tree=dir=${tree}`,
    "--timestamp=2024-01-01T00:00:00Z",
    "--subject=test",
    ...extra,
  ]);
  return stdout.trim();
}

/** Parses `ostree admin status` into (stateroot, name, pinned, version) rows. */
export function parseAdminStatus(text: string): {
  stateroot: string;
  name: string;
  pinned: boolean;
  version: string | null;
  booted: boolean;
  staged: boolean;
}[] {
  const rows: {
    stateroot: string;
    name: string;
    pinned: boolean;
    version: string | null;
    booted: boolean;
    staged: boolean;
  }[] = [];
  for (const line of text.split("\n")) {
    const m = /^([* ]) (\S+) ([0-9a-f]{64}\.[0-9]+)( \(staged\))?/.exec(line);
    if (m) {
      rows.push({
        stateroot: m[2]!,
        name: m[3]!,
        pinned: false,
        version: null,
        booted: m[1] === "*",
        staged: !!m[4],
      });
      continue;
    }
    const last = rows[rows.length - 1];
    if (!last) continue;
    if (/^\s+Pinned: yes/.test(line)) last.pinned = true;
    const v = /^\s+Version: (.*)$/.exec(line);
    if (v) last.version = v[1]!;
  }
  return rows;
}

/** The boot-relevant state of a sysroot as text lines: loader links, entries, bootlinks, origins, refs. */
export async function bootState(root: string): Promise<string[]> {
  const out: string[] = [];
  out.push(`boot/loader -> ${await readlink(join(root, "boot/loader"))}`);
  const loader = await readlink(join(root, "boot/loader"));
  for (const n of (await readdir(join(root, "boot", loader, "entries"))).sort())
    out.push(`entry ${n}:\n${await readFile(join(root, "boot", loader, "entries", n), "utf8")}`);
  for (const n of (await readdir(join(root, "ostree"))).sort()) {
    if (!n.startsWith("boot.")) continue;
    const st = await lstat(join(root, "ostree", n));
    if (st.isSymbolicLink()) out.push(`ostree/${n} -> ${await readlink(join(root, "ostree", n))}`);
    else {
      for (const os of await readdir(join(root, "ostree", n)))
        for (const cs of await readdir(join(root, "ostree", n, os)))
          for (const s of (await readdir(join(root, "ostree", n, os, cs))).sort())
            out.push(
              `ostree/${n}/${os}/${cs}/${s} -> ${await readlink(join(root, "ostree", n, os, cs, s))}`,
            );
    }
  }
  for (const n of (await readdir(join(root, "boot/ostree"))).sort())
    out.push(`boot/ostree/${n}: ${(await readdir(join(root, "boot/ostree", n))).sort().join(" ")}`);
  for (const os of await readdir(join(root, "ostree/deploy")))
    for (const n of (await readdir(join(root, "ostree/deploy", os, "deploy"))).sort())
      if (n.endsWith(".origin"))
        out.push(
          `origin ${n}:\n${await readFile(join(root, "ostree/deploy", os, "deploy", n), "utf8")}`,
        );
  const { stdout } = await ostreeCli
    .run(["refs", `--repo=${join(root, "ostree/repo")}`, "--list", "ostree"])
    .catch(() => ({ stdout: "" }));
  const refs = stdout.split("\n").filter(Boolean).sort();
  for (const r of refs) {
    const { stdout: c } = await ostreeCli.run([
      "rev-parse",
      `--repo=${join(root, "ostree/repo")}`,
      r,
    ]);
    out.push(`ref ${r} -> ${c.trim()}`);
  }
  return out;
}

/** ostree admin with mutable deployments (no chattr +i), so tests and our cleanup can remove them. */
export function admin(args: string[]) {
  return ostreeCli.admin(args, {
    env: { ...process.env, OSTREE_SYSROOT_DEBUG: "mutable-deployments" },
  });
}
