import { createHash } from "node:crypto";
import {
  chmodSync,
  createReadStream,
  linkSync,
  mkdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { isImageModeError } from "@imagemode/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTar } from "../src/import/tar.js";
import { haveTool, makeHostileTars, makeTemp, oracleList, run } from "./helpers/tools.js";

const hex = (s: string) => Buffer.from(s).toString("hex");
const strip = (h: string) => hex(Buffer.from(h, "hex").toString("latin1").replace(/\/+$/, "")); // oracle strips trailing '/'

async function list(path: string, chunk = 64 * 1024) {
  const out = [];
  for await (const e of readTar(createReadStream(path, { highWaterMark: chunk }))) {
    const h = createHash("sha256");
    for await (const c of e.content) h.update(c);
    const row: Record<string, unknown> = {
      path: strip(Buffer.from(e.path).toString("hex")),
      type: e.type,
      mode: e.mode,
      uid: e.uid,
      gid: e.gid,
      size: e.type === "file" ? e.size : 0,
      xattrs: e.xattrs.map(([k, v]) => [k, Buffer.from(v).toString("hex")]),
    };
    if (e.linkName !== undefined) row.link = hex(e.linkName);
    if (e.type === "file") row.sha256 = h.digest("hex");
    out.push(row);
  }
  return out;
}

describe("readTar against Python's tarfile and GNU tar", () => {
  const tmp = makeTemp();
  beforeAll(() => {
    makeHostileTars(tmp.path);
    // A real tree archived by GNU tar in gnu and pax formats.
    if (!haveTool("tar")) return;
    const src = join(tmp.path, "src");
    mkdirSync(join(src, "usr/bin"), { recursive: true });
    mkdirSync(join(src, "etc/empty"), { recursive: true });
    writeFileSync(join(src, "usr/bin/run.sh"), "#!/bin/sh\necho hi\n");
    chmodSync(join(src, "usr/bin/run.sh"), 0o755);
    writeFileSync(join(src, "etc/empty.txt"), "");
    writeFileSync(join(src, "usr/big"), Buffer.alloc(3 * 1024 * 1024 + 17, 7));
    linkSync(join(src, "usr/big"), join(src, "usr/big.hl"));
    symlinkSync("../usr/bin/run.sh", join(src, "etc/run"));
    const deep = join(src, "usr", "d".repeat(90), "e".repeat(90));
    mkdirSync(deep, { recursive: true });
    writeFileSync(join(deep, `${"ü".repeat(60)}.txt`), "utf8 and long\n");
    for (const fmt of ["gnu", "pax"]) {
      run("tar", [
        "--format",
        fmt,
        "--numeric-owner",
        "--owner=0",
        "--group=0",
        "-C",
        src,
        "-cf",
        join(tmp.path, `real-${fmt}.tar`),
        ".",
      ]);
    }
  });
  afterAll(() => tmp.cleanup());

  for (const name of ["rules-gnu.tar", "rules-pax.tar", "real-gnu.tar", "real-pax.tar"]) {
    it(`lists ${name} exactly like tarfile (in odd chunk sizes)`, async () => {
      const p = join(tmp.path, name);
      const expected = oracleList(p).map((e) => ({ ...e, path: strip(e.path) }));
      expect(expected.length).toBeGreaterThan(5);
      for (const chunk of name.startsWith("real") ? [64 * 1024, 4099] : [64 * 1024, 513, 7]) {
        expect(await list(p, chunk)).toEqual(expected);
      }
    });
  }

  it("keeps binary pax xattr values and base-256 uids", async () => {
    const entries = await list(join(tmp.path, "rules-pax.tar"));
    const caps = entries.find(
      (e) => Buffer.from(e.path as string, "hex").toString() === "usr/share/caps",
    );
    expect(caps?.xattrs).toEqual([
      ["user.test", hex("v1")],
      ["user.bin", "fffe80"],
    ]);
    const gnu = await list(join(tmp.path, "rules-gnu.tar"));
    const big = gnu.find((e) => Buffer.from(e.path as string, "hex").toString() === "usr/big-uid");
    expect([big?.uid, big?.gid]).toEqual([3000000, 3000001]);
  });

  it("skips bodies the consumer does not read, and stops early without corruption", async () => {
    const p = join(tmp.path, "real-gnu.tar");
    const names: string[] = [];
    for await (const e of readTar(createReadStream(p, { highWaterMark: 1000 }))) {
      names.push(e.path);
      if (e.type === "file") {
        for await (const _ of e.content) break; // read one chunk, abandon the rest
      }
    }
    expect(names.length).toBe(oracleList(p).length);
  });

  it("rejects non-UTF-8 names (ustar and pax) with a typed error", async () => {
    for (const name of ["nonutf8.tar", "nonutf8-pax.tar"]) {
      const err = await list(join(tmp.path, name)).catch((e) => e);
      expect(isImageModeError(err, "INVALID_ARGUMENT"), String(err)).toBe(true);
      expect(String(err.message)).toMatch(/non-UTF-8/);
    }
  });

  it("caps extension headers", async () => {
    const err = await list(join(tmp.path, "huge-pax.tar")).catch((e) => e);
    expect(isImageModeError(err, "PARSE"), String(err)).toBe(true);
    expect(String(err.message)).toMatch(/exceeds the limit/);
  });

  it("reads an archive that ends right after the last entry's data (umoci 0.4 layers), but not one cut inside it", async () => {
    const full = readFileSync(join(tmp.path, "real-gnu.tar"));
    // find the last regular file's header by walking the headers
    let off = 0;
    let lastEnd = 0;
    let count = 0;
    while (off + 512 <= full.length && full[off] !== 0) {
      const size = Number.parseInt(
        full
          .subarray(off + 124, off + 136)
          .toString("latin1")
          .replace(/\0.*$/, "")
          .trim() || "0",
        8,
      );
      const type = String.fromCharCode(full[off + 156] as number);
      const dataEnd = off + 512 + size;
      if ((type === "0" || type === "\0") && size % 512 !== 0) lastEnd = dataEnd;
      off += 512 + Math.ceil(size / 512) * 512;
      count++;
    }
    expect(lastEnd).toBeGreaterThan(0);
    const cut = full.subarray(0, lastEnd);
    const one = async (b: Uint8Array) => {
      const names: string[] = [];
      for await (const e of readTar(
        (async function* () {
          yield b;
        })(),
      )) {
        names.push(e.path);
        for await (const _ of e.content);
      }
      return names;
    };
    const names = await one(cut);
    expect(names.length).toBeGreaterThan(0);
    expect(names.length).toBeLessThanOrEqual(count);
    const err = await one(full.subarray(0, lastEnd - 1)).catch((e) => e);
    expect(isImageModeError(err, "PARSE"), String(err)).toBe(true);
  });

  it("rejects corrupt and truncated archives", async () => {
    const bytes = readFileSync(join(tmp.path, "rules-gnu.tar"));
    const corrupt = Buffer.from(bytes);
    corrupt[10] = (corrupt[10] as number) ^ 0xff;
    const bad = async (b: Uint8Array) => {
      try {
        for await (const e of readTar(
          (async function* () {
            yield b;
          })(),
        ))
          for await (const _ of e.content);
      } catch (e) {
        return e;
      }
      return undefined;
    };
    expect(isImageModeError(await bad(corrupt), "PARSE")).toBe(true);
    expect(isImageModeError(await bad(bytes.subarray(0, 512 + 100)), "PARSE")).toBe(true);
  });
});
