/**
 * Test helper: reads an ext4 image back with the real `debugfs` (never with our own code) into
 * a map path → what the image says, and builds the same map from a tree for comparison.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { TreeEntry } from "@imagemode/core";

const run = promisify(execFile);

/** One inode as seen through a path. */
export interface SeenEntry {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size?: number;
  links: number;
  target?: string;
  rdev?: string;
  sha256?: string;
  xattrs: Record<string, string>;
}

const TYPE = new Map<number, string>([
  [0o100000, "file"],
  [0o040000, "dir"],
  [0o120000, "symlink"],
  [0o020000, "chardev"],
  [0o060000, "blockdev"],
  [0o010000, "fifo"],
  [0o140000, "socket"],
]);

/** Runs `e2fsck -fn` and returns its exit status and output. */
export async function e2fsck(img: string): Promise<{ status: number; output: string }> {
  try {
    const r = await run("e2fsck", ["-fn", img], { maxBuffer: 64 << 20 });
    return { status: 0, output: r.stdout + r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return {
      status: typeof x.code === "number" ? x.code : -1,
      output: `${x.stdout ?? ""}${x.stderr ?? ""}`,
    };
  }
}

async function debugfs(img: string, cmds: string[], work: string): Promise<Map<string, string>> {
  const script = join(work, `cmds-${Math.random().toString(36).slice(2)}`);
  await writeFile(script, `${cmds.join("\n")}\n`);
  const { stdout } = await run("debugfs", ["-f", script, img], { maxBuffer: 512 << 20 });
  const out = new Map<string, string>();
  const parts = stdout.split(/^debugfs: /m).slice(1);
  parts.forEach((p, i) => {
    const nl = p.indexOf("\n");
    out.set(`${i}`, nl < 0 ? "" : p.slice(nl + 1));
  });
  return out;
}

const q = (p: string) => `"${p}"`;
const abs = (p: string) => (p === "" ? "/" : `/${p}`);

/** Reads the whole image into a map of path → {@link SeenEntry} using debugfs. */
export async function readImage(
  img: string,
  opts: { contents?: boolean } = {},
): Promise<Map<string, SeenEntry>> {
  const work = await mkdtemp(join(tmpdir(), "ext4-inspect-"));
  try {
    const seen = new Map<string, SeenEntry & { ino: number }>();
    let level = [""];
    seen.set("", { type: "dir", mode: 0, uid: 0, gid: 0, links: 0, xattrs: {}, ino: 2 });
    while (level.length > 0) {
      const res = await debugfs(
        img,
        level.map((d) => `ls -l -p ${q(abs(d))}`),
        work,
      );
      const next: string[] = [];
      level.forEach((d, i) => {
        for (const line of (res.get(`${i}`) ?? "").split("\n")) {
          const m = /^\/(\d+)\/(\d+)\/(\d+)\/(\d+)\/(.*)\/(\d*)\/$/.exec(line);
          if (!m) continue;
          const name = m[5] as string;
          if (m[1] === "0" || name === "" || name === "..") continue;
          if (name === ".") {
            if (d === "")
              Object.assign(seen.get("") as SeenEntry, {
                mode: Number.parseInt(m[2] as string, 8) & 0o7777,
                uid: Number(m[3]),
                gid: Number(m[4]),
              });
            continue;
          }
          const path = d === "" ? name : `${d}/${name}`;
          const mode = Number.parseInt(m[2] as string, 8);
          const type = TYPE.get(mode & 0o170000) ?? "unknown";
          seen.set(path, {
            type,
            mode: mode & 0o7777,
            uid: Number(m[3]),
            gid: Number(m[4]),
            size: m[6] ? Number(m[6]) : undefined,
            links: 0,
            xattrs: {},
            ino: Number(m[1]),
          });
          if (type === "dir") next.push(path);
        }
      });
      level = next;
    }
    const paths = [...seen.keys()];
    const cmds: string[] = [];
    const dumps = new Map<string, string>();
    for (const [i, p] of paths.entries()) {
      cmds.push(`stat ${q(abs(p))}`, `ea_list ${q(abs(p))}`);
      const e = seen.get(p) as SeenEntry;
      if ((e.type === "file" && opts.contents !== false) || e.type === "symlink") {
        const f = join(work, `d${i}`);
        dumps.set(p, f);
        cmds.push(`dump ${q(abs(p))} ${f}`);
      }
    }
    const res = await debugfs(img, cmds, work);
    let k = 0;
    const eaGets: { p: string; name: string; file: string }[] = [];
    for (const p of paths) {
      const e = seen.get(p) as SeenEntry;
      const st = res.get(`${k++}`) ?? "";
      const ea = res.get(`${k++}`) ?? "";
      if (dumps.has(p)) k++;
      const links = /Links: (\d+)/.exec(st);
      e.links = links ? Number(links[1]) : -1;
      const size = /Size: (\d+)/.exec(st);
      if (size) e.size = Number(size[1]);
      const fast = /Fast link dest: "(.*)"/.exec(st);
      if (fast) e.target = fast[1];
      const dev = /Device major\/minor number: (\d+):(\d+)/.exec(st);
      if (dev) e.rdev = `${Number(dev[1])}:${Number(dev[2])}`;
      for (const line of ea.split("\n")) {
        const m = /^ {2}(\S+) \((\d+)\)/.exec(line);
        if (m) eaGets.push({ p, name: m[1] as string, file: join(work, `x${eaGets.length}`) });
      }
    }
    if (eaGets.length > 0) {
      await debugfs(
        img,
        eaGets.map((g) => `ea_get -f ${g.file} ${q(abs(g.p))} ${g.name}`),
        work,
      );
      for (const g of eaGets) {
        const v = await readFile(g.file).catch(() => Buffer.from("<missing>"));
        (seen.get(g.p) as SeenEntry).xattrs[g.name] = v.toString("hex");
      }
    }
    for (const [p, f] of dumps) {
      const e = seen.get(p) as SeenEntry;
      const data = await readFile(f);
      if (e.type === "symlink") e.target ??= data.toString();
      else e.sha256 = createHash("sha256").update(data).digest("hex");
    }
    const out = new Map<string, SeenEntry>();
    for (const [p, e] of seen) {
      const { ino: _ino, ...rest } = e as SeenEntry & { ino: number };
      if (rest.type !== "file") delete rest.size;
      out.set(p === "" ? "." : p, rest);
    }
    return out;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Linux `major:minor` of an rdev, decimal. */
function rdevString(rdev: number): string {
  const big = BigInt(rdev);
  const major = Number(((big >> 8n) & 0xfffn) | ((big >> 32n) & ~0xfffn));
  const minor = Number((big & 0xffn) | ((big >> 12n) & ~0xffn));
  return `${major}:${minor}`;
}

/** What the image should say for a tree (contents hashed through `hash`). */
export async function expectedFromEntries(
  entries: TreeEntry[],
  opts: { contents?: boolean } = {},
): Promise<Map<string, SeenEntry>> {
  const out = new Map<string, SeenEntry>();
  const links = new Map<string, number>();
  for (const e of entries) if (e.inode) links.set(e.inode, (links.get(e.inode) ?? 0) + 1);
  const first = new Map<string, SeenEntry>();
  const subdirs = new Map<string, number>();
  for (const e of entries) {
    if (e.type === "dir" && e.path !== ".") {
      const parent = e.path.includes("/") ? e.path.slice(0, e.path.lastIndexOf("/")) : ".";
      subdirs.set(parent, (subdirs.get(parent) ?? 0) + 1);
    }
  }
  for (const e of entries) {
    const firstSeen = e.inode ? first.get(e.inode) : undefined;
    if (firstSeen) {
      out.set(e.path, firstSeen);
      continue;
    }
    const s: SeenEntry = {
      type: e.type,
      mode: e.mode,
      uid: e.uid,
      gid: e.gid,
      links: e.inode ? (links.get(e.inode) as number) : 1,
      xattrs: {},
    };
    if (e.type === "dir") s.links = 2 + (subdirs.get(e.path) ?? 0);
    if (e.type === "file") {
      s.size = e.size ?? 0;
      if (opts.contents !== false) {
        const h = createHash("sha256");
        if (e.content) for await (const c of await e.content()) h.update(c);
        s.sha256 = h.digest("hex");
      }
    }
    if (e.type === "symlink") s.target = e.linkTarget;
    if (e.type === "chardev" || e.type === "blockdev") s.rdev = rdevString(e.rdev ?? 0);
    for (const [k, v] of e.xattrs ?? []) s.xattrs[k] = Buffer.from(v).toString("hex");
    if (e.inode) first.set(e.inode, s);
    out.set(e.path, s);
  }
  return out;
}
