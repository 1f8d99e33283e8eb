import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  bytesStream,
  concatBytes,
  decompress,
  isImageModeError,
  layerCompression,
  MediaType,
  sniffCompression,
} from "../src/index.js";

// Compressed fixtures are made by the real CLIs (gzip, zstd), not by our own code.
const plain = Buffer.concat([randomBytes(200_000), Buffer.alloc(300_000, "imagemode ")]);
const gz = execFileSync("gzip", ["-c", "-6"], { input: plain, maxBuffer: 1 << 26 });
const zst = execFileSync("zstd", ["-c", "-q", "-3"], { input: plain, maxBuffer: 1 << 26 });

async function collect(s: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const out: Uint8Array[] = [];
  for await (const c of s) out.push(c);
  return Buffer.from(concatBytes(out));
}
function* split(b: Buffer, n: number) {
  for (let i = 0; i < b.length; i += n) yield b.subarray(i, i + n);
}
async function* asStream(b: Buffer, n = 7777) {
  yield* split(b, n);
}
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

describe("layer decompression", () => {
  it("maps layer media types to compressions", () => {
    expect(layerCompression(MediaType.OciLayerGzip)).toBe("gzip");
    expect(layerCompression(MediaType.DockerLayerGzip)).toBe("gzip");
    expect(layerCompression(MediaType.OciLayerZstd)).toBe("zstd");
    expect(layerCompression(MediaType.OciLayer)).toBe("none");
    expect(() => layerCompression(MediaType.OciManifest)).toThrow(/not a layer media type/);
  });

  it("sniffs magic numbers", () => {
    expect(sniffCompression(gz)).toBe("gzip");
    expect(sniffCompression(zst)).toBe("zstd");
    expect(sniffCompression(plain)).toBe("none");
  });

  it("gunzips what gzip(1) made", async () => {
    expect(sha(await collect(decompress(asStream(gz), "gzip")))).toBe(sha(plain));
  });

  it.each(["zstd-napi", "fzstd"] as const)("decodes what zstd(1) made with %s", async (backend) => {
    expect(sha(await collect(decompress(asStream(zst), "zstd", { zstd: backend })))).toBe(
      sha(plain),
    );
  });

  it("passes uncompressed data through", async () => {
    expect(sha(await collect(decompress(bytesStream(plain), "none")))).toBe(sha(plain));
  });

  it.each([
    ["gzip", () => Buffer.concat([gz.subarray(0, 1000), Buffer.alloc(500, 0x41)])],
    ["zstd", () => Buffer.concat([zst.subarray(0, 1000), Buffer.alloc(500, 0x41)])],
  ] as const)("turns corrupt %s data into a PARSE error", async (kind, make) => {
    const err = await collect(decompress(asStream(make()), kind)).catch((e: unknown) => e);
    expect(isImageModeError(err, "PARSE")).toBe(true);
  });
});
