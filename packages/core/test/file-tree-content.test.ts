import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectTree, HostFile, openHostFile, readHostDirectory } from "../src/index.js";

let dir: string;
const SIZES = [0, 1, 4095, 4096, 65535, 65536, 65537, 300 * 1024 + 7];

beforeAll(async () => {
  dir = await fs.mkdtemp(join(tmpdir(), "imagemode-core-content-"));
  await fs.mkdir(join(dir, "tree/sub"), { recursive: true });
  for (const n of SIZES) await fs.writeFile(join(dir, "tree/sub", `f${n}`), randomBytes(n));
});

afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function sha(stream: AsyncIterable<Uint8Array>): Promise<{ hex: string; bytes: number }> {
  const h = createHash("sha256");
  let bytes = 0;
  for await (const c of stream) {
    h.update(c);
    bytes += c.length;
  }
  return { hex: h.digest("hex"), bytes };
}

describe("readHostDirectory contents", () => {
  it("streams every size (small files in one read) with the bytes sha256sum sees", async () => {
    const entries = await collectTree(readHostDirectory(join(dir, "tree")));
    const files = entries.filter((e) => e.type === "file");
    expect(files.map((e) => e.path).sort()).toEqual(SIZES.map((n) => `sub/f${n}`).sort());
    for (const e of files) {
      const abs = join(dir, "tree", e.path);
      const want = execFileSync("sha256sum", [abs]).toString().split(" ")[0];
      const got = await sha(await e.content!());
      expect(got).toEqual({ hex: want, bytes: e.size });
      // the host file reference names the same file, its directory string shared
      expect(e.hostFile).toBeInstanceOf(HostFile);
      expect(e.hostFile?.path()).toBe(abs);
      expect(e.hostFile?.size).toBe(e.size);
      expect(e.content).toBe(e.hostFile?.open);
    }
    const dirs = new Set(files.map((e) => e.hostFile?.dir));
    expect(dirs.size).toBe(1);
  });

  it("yields the bytes a small file gained after it was listed (so consumers see the size change)", async () => {
    const p = join(dir, "grow");
    await fs.writeFile(p, "abc");
    const f = new HostFile(dir, "grow", 3);
    await fs.appendFile(p, Buffer.alloc(100_000, 7));
    const got = await sha(await openHostFile(f));
    expect(got.bytes).toBe(100_003);
    expect(got.hex).toBe(execFileSync("sha256sum", [p]).toString().split(" ")[0]);
  });

  it("fails with the file's error when it disappeared", async () => {
    const f = new HostFile(dir, "missing", 10);
    await expect(sha(await openHostFile(f))).rejects.toMatchObject({ code: "ENOENT" });
  });
});
