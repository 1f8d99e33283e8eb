import { createReadStream, rmSync } from "node:fs";
import { join } from "node:path";
import { isImageModeError, type ProgressEvent } from "@imagemode/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  applyImport,
  importImage,
  META_CONFIG,
  META_MANIFEST,
  META_MANIFEST_DIGEST,
  prepareImport,
} from "../src/import/image.js";
import { LayerReader } from "../src/import/layer.js";
import { writeCommitObject, writeLayerTree } from "../src/import/layer-commit.js";
import { mergeLayerCommits } from "../src/import/merge.js";
import { imageRef, layerRef } from "../src/import/refs.js";
import { metadataValue } from "../src/objects.js";
import { OstreeRepo } from "../src/repo.js";
import { TestOciLayout } from "./helpers/oci-layout.js";
import { HELPERS, haveTool, makeTemp, run } from "./helpers/tools.js";

const TS = 1700000000;
const HAVE = haveTool("ostree") && haveTool("umoci") && haveTool("skopeo");

describe.runIf(HAVE)("image import (umoci-built OCI layout)", () => {
  const tmp = makeTemp();
  const layout = join(tmp.path, "layout");
  beforeAll(() => {
    run("python3", [join(HELPERS, "make-layers.py"), tmp.path]);
    run("umoci", ["init", "--layout", layout]);
    run("umoci", ["new", "--image", `${layout}:img`]);
    for (const l of ["l1", "l2", "l3"]) {
      run("umoci", [
        "raw",
        "add-layer",
        "--history.created",
        "2023-11-14T22:13:20Z",
        "--image",
        `${layout}:img`,
        join(tmp.path, `${l}.tar`),
      ]);
    }
    run("umoci", [
      "config",
      "--image",
      `${layout}:img`,
      "--created",
      "2023-11-14T22:13:20Z",
      "--config.label",
      "containers.bootc=1",
      "--config.label",
      "org.opencontainers.image.version=42.1",
    ]);
    run("umoci", [
      "raw",
      "add-layer",
      "--history.created",
      "2023-11-14T22:13:20Z",
      "--image",
      `${layout}:img`,
      "--tag",
      "img4",
      join(tmp.path, "l4.tar"),
    ]);
  });
  afterAll(() => tmp.cleanup());

  it("merges layers exactly like `ostree checkout --union --whiteouts` of each layer, then commit", async () => {
    const repoDir = join(tmp.path, "merge-repo");
    const repo = await OstreeRepo.init(repoDir, { mode: "archive", fsync: false });
    const commits: string[] = [];
    for (const l of ["l1", "l2", "l3"]) {
      const reader = new LayerReader(createReadStream(join(tmp.path, `${l}.tar`)), {
        compression: "none",
      });
      commits.push(
        await writeCommitObject(repo, await writeLayerTree(repo, reader), { timestamp: TS }),
      );
    }
    const ours = await writeCommitObject(repo, await mergeLayerCommits(repo, commits), {
      timestamp: TS,
    });
    // Oracle: the real CLI does the union checkout with whiteout processing, then commits.
    const co = join(tmp.path, "checkout");
    for (const c of commits)
      run("ostree", [`--repo=${repoDir}`, "checkout", "-U", "--union", "--whiteouts", c, co]);
    rmSync(join(co, "usr/etc/hostname")); // zero-length runtime-injected file (ostree-ext cleanup_root)
    const expected = run("ostree", [
      `--repo=${repoDir}`,
      "commit",
      `--tree=dir=${co}`,
      "--owner-uid=0",
      "--owner-gid=0",
      "--no-bindings",
      `--timestamp=@${TS}`,
      "-b",
      "oracle-merge",
    ]).trim();
    expect(ours).toBe(expected);
    const ls = run("ostree", [`--repo=${repoDir}`, "ls", "-R", ours]);
    expect(ls).not.toMatch(/\.wh\./);
    expect(ls).toMatch(/usr\/lib\/opq\/o2/);
    expect(ls).not.toMatch(/usr\/lib\/opq\/o1|usr\/lib\/gone|usr\/bin\/a$/m);
  });

  it("replaces a file by a directory (OCI semantics)", async () => {
    const repo = await OstreeRepo.init(join(tmp.path, "file-dir"), {
      mode: "archive",
      fsync: false,
    });
    const res = await importImage(repo, new TestOciLayout(layout), "img4", {
      imageReference: `oci:${layout}:img4`,
    });
    const ls = run("ostree", [`--repo=${repo.path}`, "ls", "-R", res.commit, "/usr/share"]);
    expect(ls).toMatch(/usr\/share\/f\/inner/);
  });

  it("prepares, imports, records bootc refs and metadata, and re-imports nothing", async () => {
    const repoDir = join(tmp.path, "import-repo");
    const repo = await OstreeRepo.init(repoDir, { mode: "bare-user", fsync: false });
    const source = new TestOciLayout(layout);
    const plan = await prepareImport(repo, source, "img", { imageReference: `oci:${layout}:img` });
    expect(plan.layers).toHaveLength(3);
    expect(plan.needed).toBe(3);
    expect(plan.present).toBe(false);
    expect(plan.bytesNeeded).toBe(plan.layers.reduce((n, l) => n + l.descriptor.size, 0));
    // nothing but the manifest and config was fetched
    expect(
      [...source.fetched.keys()].some((d) => plan.layers.some((l) => l.descriptor.digest === d)),
    ).toBe(false);

    const events: ProgressEvent[] = [];
    const res = await applyImport(repo, source, plan, {
      imageReference: `oci:${layout}:img`,
      onProgress: (e) => events.push(e),
    });
    expect(res.imageRef).toBe(imageRef(`oci:${layout}:img`));
    expect(res.imageRef.startsWith("ostree/container/image/oci_3A__2F_")).toBe(true);
    for (const l of plan.layers) {
      expect(await repo.readRef(layerRef(l.descriptor.digest))).toMatch(/^[0-9a-f]{64}$/);
      expect(layerRef(l.descriptor.digest)).toBe(
        `ostree/container/blob/sha256_3A_${l.descriptor.digest.slice(7)}`,
      );
    }
    const warn = events.find((e) => e.type === "warn");
    expect(warn && "message" in warn ? warn.message : "").toBe(
      "Image contains non-ostree compatible file paths: home: 1 junk: 1 opt: 1",
    );
    const dones = events.filter((e) => e.type === "done" && e.task === "ostree.import.layer");
    expect(dones.map((e) => (e.type === "done" ? [e.id, e.bytes] : []))).toEqual(
      plan.layers.map((l) => [l.descriptor.digest, l.descriptor.size]),
    );
    expect(
      events.filter((e) => e.type === "start").map((e) => (e.type === "start" ? e.total : 0)),
    ).toEqual(plan.layers.map((l) => l.descriptor.size));

    const refs = run("ostree", [`--repo=${repoDir}`, "refs"]);
    expect(refs).toContain(res.imageRef);
    run("ostree", [`--repo=${repoDir}`, "fsck", "-q"]);
    const commit = await repo.readCommit(res.commit);
    expect(commit.metadata.map(([k]) => k)).toEqual([
      "ostree.bootable",
      META_CONFIG,
      META_MANIFEST,
      META_MANIFEST_DIGEST,
      "version",
    ]);
    expect(metadataValue(commit.metadata, META_MANIFEST_DIGEST)?.value).toBe(plan.manifestDigest);
    expect(metadataValue(commit.metadata, "version")?.value).toBe("42.1");
    expect(JSON.parse(metadataValue(commit.metadata, META_MANIFEST)?.value as string)).toEqual(
      plan.manifest,
    );
    expect(commit.timestamp).toBe(BigInt(TS));
    const shown = run("ostree", [
      `--repo=${repoDir}`,
      "show",
      `--print-metadata-key=${META_MANIFEST_DIGEST}`,
      res.imageRef,
    ]);
    expect(shown.trim()).toBe(`'${plan.manifestDigest}'`);
    expect(
      run("ostree", [
        `--repo=${repoDir}`,
        "show",
        "--print-metadata-key=ostree.bootable",
        res.imageRef,
      ]).trim(),
    ).toBe("true");
    expect(run("ostree", [`--repo=${repoDir}`, "cat", res.imageRef, "/usr/lib/keep/k3"])).toBe(
      "k3\n",
    );
    expect(run("ostree", [`--repo=${repoDir}`, "cat", res.imageRef, "/usr/etc/resolv.conf"])).toBe(
      "nameserver 192.0.2.1\n",
    );

    // Again: already present, nothing fetched.
    const source2 = new TestOciLayout(layout);
    const plan2 = await prepareImport(repo, source2, "img", {
      imageReference: `oci:${layout}:img`,
    });
    expect(plan2.present).toBe(true);
    expect(plan2.needed).toBe(0);
    const again = await applyImport(repo, source2, plan2);
    expect(again.alreadyPresent).toBe(true);
    expect(again.commit).toBe(res.commit);

    // A derived image sharing the lower layers fetches only its new layer.
    const source3 = new TestOciLayout(layout);
    const plan3 = await prepareImport(repo, source3, "img4", {
      imageReference: `oci:${layout}:img4`,
    });
    expect(plan3.needed).toBe(1);
    const r3 = await applyImport(repo, source3, plan3, { imageReference: `oci:${layout}:img4` });
    expect(r3.layers.map((l) => l.imported)).toEqual([false, false, false, true]);
    expect(source3.fetched.get(plan3.layers[0]?.descriptor.digest as string)).toBeUndefined();
  });

  it("imports zstd and uncompressed layers of the same image to the same tree", async () => {
    const gzRepo = await OstreeRepo.init(join(tmp.path, "gz-repo"), {
      mode: "archive",
      fsync: false,
    });
    const gz = await importImage(gzRepo, new TestOciLayout(layout), "img");
    const gzTree = await gzRepo.readCommit(gz.commit);
    const zst = join(tmp.path, "zstd-layout");
    run("skopeo", [
      "copy",
      "--dest-compress-format",
      "zstd",
      `oci:${layout}:img`,
      `oci:${zst}:img`,
    ]);
    const zRepo = await OstreeRepo.init(join(tmp.path, "zstd-repo"), {
      mode: "archive",
      fsync: false,
    });
    const zsrc = new TestOciLayout(zst);
    const zplan = await prepareImport(zRepo, zsrc, "img");
    expect(zplan.layers.every((l) => l.descriptor.mediaType.endsWith("+zstd"))).toBe(true);
    const z = await applyImport(zRepo, zsrc, zplan);
    const zTree = await zRepo.readCommit(z.commit);
    expect([zTree.rootTree, zTree.rootMeta]).toEqual([gzTree.rootTree, gzTree.rootMeta]);
    // Uncompressed: umoci always compresses, so the manifest is rewritten by hand to point at the
    // plain tars (whose digests are the diff_ids).
    const plain = join(tmp.path, "plain-layout");
    run("cp", ["-r", layout, plain]);
    const psrc = new TestOciLayout(plain);
    const desc = await psrc.resolve("img");
    const { readFileSync, writeFileSync, statSync } = await import("node:fs");
    const { createHash } = await import("node:crypto");
    const manifest = JSON.parse(
      readFileSync(join(plain, "blobs/sha256", desc.digest.slice(7)), "utf8"),
    );
    const config = JSON.parse(
      readFileSync(join(plain, "blobs/sha256", manifest.config.digest.slice(7)), "utf8"),
    );
    manifest.layers = ["l1", "l2", "l3"].map((l, i) => {
      const bytes = readFileSync(join(tmp.path, `${l}.tar`));
      const d = createHash("sha256").update(bytes).digest("hex");
      expect(`sha256:${d}`).toBe(config.rootfs.diff_ids[i]);
      writeFileSync(join(plain, "blobs/sha256", d), bytes);
      return {
        mediaType: "application/vnd.oci.image.layer.v1.tar",
        digest: `sha256:${d}`,
        size: statSync(join(tmp.path, `${l}.tar`)).size,
      };
    });
    const mBytes = Buffer.from(JSON.stringify(manifest));
    const mDigest = createHash("sha256").update(mBytes).digest("hex");
    writeFileSync(join(plain, "blobs/sha256", mDigest), mBytes);
    const index = JSON.parse(readFileSync(join(plain, "index.json"), "utf8"));
    index.manifests.push({
      mediaType: manifest.mediaType ?? "application/vnd.oci.image.manifest.v1+json",
      digest: `sha256:${mDigest}`,
      size: mBytes.length,
      annotations: { "org.opencontainers.image.ref.name": "plain" },
    });
    writeFileSync(join(plain, "index.json"), JSON.stringify(index));
    const pRepo = await OstreeRepo.init(join(tmp.path, "plain-repo"), {
      mode: "archive",
      fsync: false,
    });
    const p = await importImage(pRepo, psrc, "plain");
    const pTree = await pRepo.readCommit(p.commit);
    expect([pTree.rootTree, pTree.rootMeta]).toEqual([gzTree.rootTree, gzTree.rootMeta]);
  });

  it("stops with ABORTED when the signal fires mid-import, leaving no image ref", async () => {
    const repo = await OstreeRepo.init(join(tmp.path, "abort-repo"), {
      mode: "archive",
      fsync: false,
    });
    const ac = new AbortController();
    const err = await importImage(repo, new TestOciLayout(layout), "img", {
      signal: ac.signal,
      onProgress: (e) => {
        if (e.type === "done") ac.abort(); // after the first layer
      },
    }).catch((e) => e);
    expect(isImageModeError(err, "ABORTED"), String(err)).toBe(true);
    expect(await repo.readRef(imageRef("img"))).toBeNull();
    run("ostree", [`--repo=${repo.path}`, "fsck", "-q"]);
    // the layer that finished is kept and reused by the next attempt
    const again = await importImage(repo, new TestOciLayout(layout), "img");
    expect(again.layers.map((l) => l.imported)).toEqual([false, true, true]);
  });

  it("picks a platform from an index and reports missing platforms", async () => {
    const { createHash } = await import("node:crypto");
    const { writeFileSync, readFileSync } = await import("node:fs");
    const multi = join(tmp.path, "multi-layout");
    run("cp", ["-r", layout, multi]);
    const src = new TestOciLayout(multi);
    const amd = await src.resolve("img");
    const arm = await src.resolve("img4");
    const idx = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: [
          {
            ...arm,
            annotations: undefined,
            platform: { os: "linux", architecture: "arm64", variant: "v8" },
          },
          { ...amd, annotations: undefined, platform: { os: "linux", architecture: "amd64" } },
        ],
      }),
    );
    const idxDigest = createHash("sha256").update(idx).digest("hex");
    writeFileSync(join(multi, "blobs/sha256", idxDigest), idx);
    const index = JSON.parse(readFileSync(join(multi, "index.json"), "utf8"));
    index.manifests.push({
      mediaType: "application/vnd.oci.image.index.v1+json",
      digest: `sha256:${idxDigest}`,
      size: idx.length,
      annotations: { "org.opencontainers.image.ref.name": "multi" },
    });
    writeFileSync(join(multi, "index.json"), JSON.stringify(index));
    const repo = await OstreeRepo.init(join(tmp.path, "index-repo"), {
      mode: "archive",
      fsync: false,
    });
    expect((await prepareImport(repo, src, "multi")).manifestDigest).toBe(amd.digest);
    expect(
      (
        await prepareImport(repo, src, "multi", {
          platform: { os: "linux", architecture: "arm64" },
        })
      ).manifestDigest,
    ).toBe(arm.digest);
    const err = await prepareImport(repo, src, "multi", {
      platform: { os: "linux", architecture: "s390x" },
    }).catch((e) => e);
    expect(isImageModeError(err, "NOT_FOUND"), String(err)).toBe(true);
    expect(err.message).toMatch(/linux\/arm64\/v8, linux\/amd64/);
  });

  it("fails with a typed error on a layer whose diff_id does not match", async () => {
    const bad = join(tmp.path, "bad-layout");
    run("cp", ["-r", layout, bad]);
    const src = new TestOciLayout(bad);
    const desc = await src.resolve("img");
    const manifest = JSON.parse(run("cat", [join(bad, "blobs/sha256", desc.digest.slice(7))]));
    const cfgPath = join(bad, "blobs/sha256", manifest.config.digest.slice(7));
    const cfg = JSON.parse(run("cat", [cfgPath]));
    cfg.rootfs.diff_ids[0] = `sha256:${"1".repeat(64)}`;
    // write the tampered config under its new digest and point a new manifest at it
    const { createHash } = await import("node:crypto");
    const { writeFileSync, readFileSync } = await import("node:fs");
    const cfgBytes = Buffer.from(JSON.stringify(cfg));
    const cfgDigest = createHash("sha256").update(cfgBytes).digest("hex");
    writeFileSync(join(bad, "blobs/sha256", cfgDigest), cfgBytes);
    manifest.config = { ...manifest.config, digest: `sha256:${cfgDigest}`, size: cfgBytes.length };
    const mBytes = Buffer.from(JSON.stringify(manifest));
    const mDigest = createHash("sha256").update(mBytes).digest("hex");
    writeFileSync(join(bad, "blobs/sha256", mDigest), mBytes);
    const index = JSON.parse(readFileSync(join(bad, "index.json"), "utf8"));
    index.manifests.push({
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      digest: `sha256:${mDigest}`,
      size: mBytes.length,
      annotations: { "org.opencontainers.image.ref.name": "tampered" },
    });
    writeFileSync(join(bad, "index.json"), JSON.stringify(index));
    const repo = await OstreeRepo.init(join(tmp.path, "bad-repo"), {
      mode: "archive",
      fsync: false,
    });
    const e = await importImage(repo, new TestOciLayout(bad), "tampered").catch((x) => x);
    expect(isImageModeError(e, "DIGEST_MISMATCH"), String(e)).toBe(true);
    expect(await repo.readRef(imageRef("tampered"))).toBeNull();
  });
});
