import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { FileBlockSink } from "../src/block-sink.js";
import { writeQcow2 } from "../src/outputs/qcow2.js";
import { Qcow2BlockSink } from "../src/outputs/qcow2-sink.js";
import { run, withTemp } from "./helpers/tools.js";
import { bytesOf } from "./helpers/trees.js";

const KiB = 1024;
const MiB = 1 << 20;
const CS = 64 * KiB;

type Write = [offset: number, data: Uint8Array];

/**
 * The same writes into a raw disk (FileBlockSink, the reference) and a direct qcow2 (and the raw
 * disk converted by writeQcow2); then the real tools judge the qcow2: `qemu-img check` clean, `qemu-img compare` identical to the raw disk,
 * `qemu-img info` sane. Both sinks must record the same written extents.
 */
async function judge(dir: string, size: number, writes: Write[]) {
  const rawPath = join(dir, "ref.raw");
  const qPath = join(dir, "direct.qcow2");
  const raw = await FileBlockSink.create(rawPath, size);
  const q = await Qcow2BlockSink.create(qPath, size);
  for (const [o, d] of writes) {
    await raw.write(o, d);
    await q.write(o, d);
  }
  await raw.close();
  const result = await q.finish();
  expect(q.written.extents()).toEqual(raw.written.extents());
  expect(q.written.bytes).toBe(raw.written.bytes);
  expect(result.fileSize).toBe((await stat(qPath)).size);
  const check = await run("qemu-img", ["check", "--output=json", qPath]);
  expect(check.code, check.stdout + check.stderr).toBe(0);
  const c = JSON.parse(check.stdout) as Record<string, number | undefined>;
  expect(c["check-errors"]).toBe(0);
  expect(c.leaks ?? 0).toBe(0);
  expect(c.corruptions ?? 0).toBe(0);
  const cmp = await run("qemu-img", ["compare", "-f", "raw", "-F", "qcow2", rawPath, qPath]);
  expect(cmp.code, cmp.stdout + cmp.stderr).toBe(0);
  expect(cmp.stdout).toMatch(/Images are identical/);
  const info = JSON.parse(
    (await run("qemu-img", ["info", "--output=json", qPath])).stdout,
  ) as Record<string, unknown> & { "format-specific": { data: Record<string, unknown> } };
  expect(info.format).toBe("qcow2");
  expect(info["virtual-size"]).toBe(size);
  expect(info["cluster-size"]).toBe(CS);
  expect(info["dirty-flag"]).toBe(false);
  expect(info["format-specific"].data).toMatchObject({
    compat: "1.1",
    "refcount-bits": 16,
    corrupt: false,
  });
  // the converter on the same raw disk (zero clusters inside the written extents are left
  // out there too): also clean and identical
  const convPath = join(dir, "converted.qcow2");
  await writeQcow2({ path: rawPath, size, extents: raw.written.extents() }, convPath);
  const convCheck = await run("qemu-img", ["check", convPath]);
  expect(convCheck.code, convCheck.stdout + convCheck.stderr).toBe(0);
  const convCmp = await run("qemu-img", ["compare", "-f", "raw", "-F", "qcow2", rawPath, convPath]);
  expect(convCmp.stdout, convCmp.stderr).toMatch(/Images are identical/);
  return { result, check: c, qPath };
}

describe("Qcow2BlockSink against qemu-img", () => {
  it("random order, partial clusters, overwrites, zero writes, cluster-spanning writes", async () => {
    await withTemp(async (dir) => {
      const size = 16 * MiB + 1536; // partial last cluster
      const writes: Write[] = [
        [12 * MiB + 100, bytesOf(1, 3000)], // partial cluster, late in the disk first
        [0, bytesOf(2, 512)], // partial first cluster
        [5 * CS - 700, bytesOf(3, 2 * CS + 1400)], // spans four clusters
        [12 * MiB + 40_000, bytesOf(4, 1000)], // same cluster again, another part of it
        [12 * MiB + 100, bytesOf(5, 100)], // overwrite inside it
        [3 * MiB, new Uint8Array(2 * MiB)], // zeros over holes: nothing allocated
        [5 * CS, new Uint8Array(CS)], // zeros over data
        [12 * MiB + 10_000, new Uint8Array(500)], // zeros into a written cluster, never-written part
        [size - 1000, bytesOf(6, 1000)], // the last (partial) cluster
        [8 * MiB, Buffer.concat([new Uint8Array(CS), bytesOf(7, 10), new Uint8Array(CS)])],
      ];
      const { result } = await judge(dir, size, writes);
      // clusters: 0, 4..7, 192 (12 MiB), last, 129 (the 10 data bytes at 8 MiB + 64 KiB)
      expect(result.dataClusters).toBe(8);
      expect(result.compressedClusters).toBe(0);
    });
  });

  it("overwrites reuse the host cluster; only zeros allocate nothing", async () => {
    await withTemp(async (dir) => {
      const size = 4 * MiB;
      const writes: Write[] = [];
      for (let i = 0; i < 20; i++) writes.push([MiB + (i % 4) * 100, bytesOf(i + 1, 5000)]);
      const { result } = await judge(dir, size, writes);
      expect(result.dataClusters).toBe(1);
      // header + 1 data + 1 L2 + 1 L1 + refcount table + block
      expect(result.fileSize).toBe(6 * CS);
      const z = join(dir, "zeros");
      const { mkdir } = await import("node:fs/promises");
      await mkdir(z);
      const empty = await judge(z, size, [
        [0, new Uint8Array(MiB)],
        [3 * MiB + 7, new Uint8Array(9)],
      ]);
      expect(empty.result.dataClusters).toBe(0);
      expect(empty.result.fileSize).toBe(4 * CS); // header, L1, refcount table and block
    });
  });

  it("rejects writes outside the disk, after finish, and a bad disk size", async () => {
    await withTemp(async (dir) => {
      const q = await Qcow2BlockSink.create(join(dir, "x.qcow2"), MiB);
      await expect(q.write(MiB - 1, new Uint8Array(2))).rejects.toMatchObject({
        code: "INVALID_ARGUMENT",
      });
      await expect(q.write(-1, new Uint8Array(1))).rejects.toMatchObject({
        code: "INVALID_ARGUMENT",
      });
      await q.write(0, new Uint8Array([1]));
      await q.finish();
      await expect(q.write(0, new Uint8Array([1]))).rejects.toMatchObject({
        code: "INVALID_ARGUMENT",
      });
      await expect(Qcow2BlockSink.create(join(dir, "y.qcow2"), 0)).rejects.toMatchObject({
        code: "INVALID_ARGUMENT",
      });
      expect((await readdir(dir)).sort()).toEqual(["x.qcow2"]);
    });
  });

  // random write sequences over a small disk with an odd size: data, zeros, overwrites
  const SIZE = 2 * MiB + 3 * 512;
  const write = fc
    .tuple(
      fc.integer({ min: 0, max: SIZE - 1 }),
      fc.integer({ min: 1, max: 3 * CS }),
      fc.constantFrom("data", "zero", "sparse"),
      fc.nat(1000),
    )
    .map(([o, l, kind, seed]): Write => {
      const len = Math.min(l, SIZE - o);
      if (kind === "zero") return [o, new Uint8Array(len)];
      const d = bytesOf(seed + 1, len);
      if (kind === "sparse") d.fill(0, 0, Math.floor(len / 2)); // zeros first, data after
      return [o, d];
    });
  test.prop([fc.array(write, { minLength: 1, maxLength: 12 })], { numRuns: 15 })(
    "random write sequences: qemu-img check clean, compare identical to the raw disk",
    async (writes) => {
      await withTemp(async (dir) => {
        const { result } = await judge(dir, SIZE, writes);
        expect(result.dataClusters).toBeLessThanOrEqual(Math.ceil(SIZE / CS));
      });
    },
  );
});
