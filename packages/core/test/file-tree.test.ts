import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fc, test } from "@fast-check/vitest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  collectTree,
  compareNames,
  isImageModeError,
  isTreePath,
  loadXattrBackend,
  normalizeTreePath,
  readHostDirectory,
  type TreeEntry,
} from "../src/index.js";

let dir: string;

beforeAll(async () => {
  dir = await fs.mkdtemp(join(tmpdir(), "imagemode-core-tree-"));
  const t = join(dir, "tree");
  await fs.mkdir(join(t, "usr/bin"), { recursive: true });
  await fs.mkdir(join(t, "empty"));
  await fs.writeFile(join(t, "usr/bin/tool"), "#!/bin/sh\necho hi\n", { mode: 0o755 });
  await fs.link(join(t, "usr/bin/tool"), join(t, "usr/bin/tool-link"));
  await fs.writeFile(join(t, "B"), "upper");
  await fs.writeFile(join(t, "a"), "lower");
  await fs.writeFile(join(t, "ä"), "utf8");
  await fs.symlink("usr/bin", join(t, "bin"));
  await fs.chmod(join(t, "empty"), 0o1777);
  execFileSync("mkfifo", [join(t, "fifo")]);
  execFileSync("setfattr", ["-n", "user.test", "-v", "value", join(t, "a")]);
});

afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe("readHostDirectory", () => {
  it("walks depth-first, parents first, names in byte order, with types and modes", async () => {
    const entries = await collectTree(
      readHostDirectory(join(dir, "tree"), { xattrs: loadXattrBackend() }),
    );
    // Compare against `find` run in C locale: the same set of paths.
    const found = execFileSync("find", [".", "-mindepth", "1"], {
      cwd: join(dir, "tree"),
      env: { LC_ALL: "C" },
    })
      .toString()
      .trim()
      .split("\n")
      .map((p) => p.slice(2))
      .sort();
    expect(entries.map((e) => e.path).sort()).toEqual(found);
    expect(entries.map((e) => e.path)).toEqual([
      "B",
      "a",
      "bin",
      "empty",
      "fifo",
      "usr",
      "usr/bin",
      "usr/bin/tool",
      "usr/bin/tool-link",
      "ä",
    ]);
    const by = new Map(entries.map((e) => [e.path, e] as [string, TreeEntry]));
    expect(by.get("bin")).toMatchObject({ type: "symlink", linkTarget: "usr/bin" });
    expect(by.get("empty")).toMatchObject({ type: "dir", mode: 0o1777 });
    expect(by.get("fifo")?.type).toBe("fifo");
    expect(by.get("usr/bin/tool")).toMatchObject({ type: "file", mode: 0o755, size: 18 });
    expect(by.get("usr/bin/tool")?.inode).toBeDefined();
    expect(by.get("usr/bin/tool")?.inode).toBe(by.get("usr/bin/tool-link")?.inode);
    expect(by.get("a")?.inode).toBeUndefined();
    expect(new TextDecoder().decode(by.get("a")?.xattrs?.get("user.test"))).toBe("value");
    const h = createHash("sha256");
    for await (const c of await by.get("usr/bin/tool")!.content!()) h.update(c);
    expect(h.digest("hex")).toBe(createHash("sha256").update("#!/bin/sh\necho hi\n").digest("hex"));
  });

  it("forces ownership when asked and can include the root entry", async () => {
    const entries = await collectTree(
      readHostDirectory(join(dir, "tree"), { owner: { uid: 0, gid: 0 }, includeRoot: true }),
    );
    expect(entries[0]).toMatchObject({ path: ".", type: "dir" });
    expect(entries.every((e) => e.uid === 0 && e.gid === 0)).toBe(true);
  });

  it("fails with a typed error for a missing or non-directory root", async () => {
    const missing = await collectTree(readHostDirectory(join(dir, "nope"))).catch(
      (e: unknown) => e,
    );
    expect(isImageModeError(missing, "NOT_FOUND")).toBe(true);
    const file = await collectTree(readHostDirectory(join(dir, "tree/a"))).catch((e: unknown) => e);
    expect(isImageModeError(file, "INVALID_ARGUMENT")).toBe(true);
  });
});

describe("tree paths", () => {
  it.each([
    ["/etc/passwd", "etc/passwd"],
    ["./usr//lib/./x", "usr/lib/x"],
    ["a/", "a"],
  ])("normalizes %j", (raw, want) => {
    expect(normalizeTreePath(raw)).toBe(want);
    expect(isTreePath(want)).toBe(true);
  });

  it.each(["", "/", "./", "a/../b", "..", "a\0b", `${"x".repeat(256)}`])("rejects %j", (raw) => {
    let err: unknown;
    try {
      normalizeTreePath(raw);
    } catch (e) {
      err = e;
    }
    expect(isImageModeError(err, "INVALID_ARGUMENT")).toBe(true);
  });

  test.prop([fc.array(fc.constantFrom("a", "b", "..", ".", "", "é", "x y"), { maxLength: 8 })])(
    "never yields '..', a leading slash or an empty component",
    (parts) => {
      const raw = parts.join("/");
      try {
        const p = normalizeTreePath(raw);
        expect(p.split("/").every((c) => c !== "" && c !== "." && c !== "..")).toBe(true);
      } catch (e) {
        expect(isImageModeError(e, "INVALID_ARGUMENT")).toBe(true);
        expect(parts.includes("..") || parts.every((x) => x === "" || x === ".")).toBe(true);
      }
    },
  );

  it("compares names byte-wise like strcmp", () => {
    expect(["b", "B", "ä", "a", "Z"].sort(compareNames)).toEqual(["B", "Z", "a", "b", "ä"]);
  });
});
