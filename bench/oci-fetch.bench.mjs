#!/usr/bin/env node
// Benchmark: `imagemode-oci`-style copy with the BUILT @imagemode/oci-fetch vs `skopeo copy`,
// docker://(loopback docker-registry) → oci:DIR, side by side in one run.
//   node bench/oci-fetch.bench.mjs [--runs 5] [--layers 10] [--layer-mb 50] [--big-mb 1024]
// Needs: docker-registry, skopeo, umoci, python3 (for the peak RSS of child processes).
// Prints a Markdown section: medians, the ratio, bytes moved by a v1→v2 update, peak RSS.
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import http from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const RUNS = opt("runs", 5);
const LAYERS = opt("layers", 10);
const LAYER_MB = opt("layer-mb", 50);
const BIG_MB = opt("big-mb", 1024);

const sh = (cmd, argv, o = {}) => {
  const r = spawnSync(cmd, argv, { encoding: "utf8", maxBuffer: 1 << 26, ...o });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(" ")}: ${r.stderr}`);
  return r.stdout;
};
for (const t of ["docker-registry", "skopeo", "umoci", "python3"])
  sh("sh", ["-c", `command -v ${t}`]);

const work = mkdtempSync(join(tmpdir(), "bench-oci-fetch-"));
const children = [];
process.on("exit", () => {
  for (const c of children) c.kill();
  rmSync(work, { recursive: true, force: true });
});

async function freePort() {
  const s = createServer().listen(0, "127.0.0.1");
  await once(s, "listening");
  const { port } = s.address();
  s.close();
  return port;
}

// --- registry
const port = await freePort();
const host = `127.0.0.1:${port}`;
writeFileSync(
  join(work, "registry.yml"),
  `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${work}/registry\n  delete:\n    enabled: true\nhttp:\n  addr: ${host}\n  secret: bench\n`,
);
const reg = spawn("docker-registry", ["serve", join(work, "registry.yml")], { stdio: "ignore" });
children.push(reg);
for (let i = 0; ; i++) {
  const ok = await new Promise((r) =>
    http
      .get(`http://${host}/v2/`, (res) => {
        res.resume();
        r(res.statusCode === 200);
      })
      .on("error", () => r(false)),
  );
  if (ok) break;
  if (i > 200) throw new Error("registry did not start");
  await new Promise((r) => setTimeout(r, 25));
}

// --- images: v1 = LAYERS × LAYER_MB random; v2 = v1 + one 5 MB layer; big = one BIG_MB layer
const layout = join(work, "src");
sh("umoci", ["init", "--layout", layout]);
function addLayer(tag, name, mb) {
  const dir = join(work, "stage", name);
  mkdirSync(dir, { recursive: true });
  const fd = openSync(join(dir, `${name}.bin`), "w");
  for (let i = 0; i < mb; i++) writeSync(fd, randomBytes(1 << 20));
  closeSync(fd);
  sh("umoci", ["insert", "--no-history", "--image", `${layout}:${tag}`, dir, "/"]);
  rmSync(dir, { recursive: true, force: true });
}
console.error(
  `bench: generating ${LAYERS}×${LAYER_MB} MB image (+ ${BIG_MB} MB single-layer image)…`,
);
sh("umoci", ["new", "--image", `${layout}:v1`]);
sh("umoci", ["config", "--image", `${layout}:v1`, "--os", "linux", "--architecture", "amd64"]);
for (let i = 0; i < LAYERS; i++) addLayer("v1", `l${i}`, LAYER_MB);
sh("umoci", ["tag", "--image", `${layout}:v1`, "v2"]);
addLayer("v2", "v2only", 5);
if (BIG_MB > 0) {
  sh("umoci", ["new", "--image", `${layout}:big`]);
  sh("umoci", ["config", "--image", `${layout}:big`, "--os", "linux", "--architecture", "amd64"]);
  addLayer("big", "big", BIG_MB);
}
for (const tag of ["v1", "v2", ...(BIG_MB > 0 ? ["big"] : [])]) {
  sh("skopeo", [
    "copy",
    "-q",
    "--preserve-digests",
    "--dest-tls-verify=false",
    `oci:${layout}:${tag}`,
    `docker://${host}/bench:${tag}`,
  ]);
}
rmSync(layout, { recursive: true, force: true });

// --- a counting proxy (bytes of blob bodies served)
let proxied = 0;
const proxyPort = await freePort();
const proxy = http
  .createServer((req, res) => {
    const up = http.request(
      { host: "127.0.0.1", port, method: req.method, path: req.url, headers: req.headers },
      (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.on("data", (c) => {
          if (req.method === "GET" && req.url.includes("/blobs/")) proxied += c.length;
        });
        ur.pipe(res);
      },
    );
    req.pipe(up);
  })
  .listen(proxyPort, "127.0.0.1");
await once(proxy, "listening");

// --- runners: each copy is a child process; python3 reports its wall time and peak RSS
// the child lives in bench/ so that it resolves @imagemode/oci-fetch (bench/package.json depends on it)
const benchDir = fileURLToPath(new URL(".", import.meta.url));
const oursScript = join(benchDir, ".oci-fetch-bench-child.mjs");
writeFileSync(
  oursScript,
  `import { copy, HttpClient, OciLayout, RegistryRepository } from "@imagemode/oci-fetch";
const [h, repo, ref, dir, tag] = process.argv.slice(2);
const http = new HttpClient();
const r = await copy(new RegistryRepository({ registry: h, repository: repo }, { insecure: true, http }), await OciLayout.open(dir, { create: true }), ref, tag, { concurrency: 6 });
await http.close();
console.log(JSON.stringify(r));
`,
);
process.on("exit", () => rmSync(oursScript, { force: true }));

const TIMER = `import resource, subprocess, sys, time
t = time.monotonic()
p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
w = time.monotonic() - t
if p.returncode != 0:
    sys.stderr.write(p.stderr.decode()); sys.exit(p.returncode)
print(w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.stdout.write(p.stdout.decode())
`;
// async: the counting proxy lives in this process and must keep serving while a copy runs
async function timed(cmd) {
  const child = spawn("python3", ["-c", TIMER, ...cmd], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (c) => (out += c));
  child.stderr.on("data", (c) => (err += c));
  const [code] = await once(child, "close");
  if (code !== 0) throw new Error(`${cmd.join(" ")}: ${err}`);
  const [first, ...rest] = out.split("\n");
  const [secs, rssKb] = first.split(" ").map(Number);
  return { secs, rssMb: rssKb / 1024, stdout: rest.join("\n") };
}
const oursCmd = (h, tag, dir, dstTag = tag) => [
  process.execPath,
  oursScript,
  h,
  "bench",
  tag,
  dir,
  dstTag,
];
const skopeoCmd = (h, tag, dir, dstTag = tag) => [
  "skopeo",
  "copy",
  "-q",
  "--src-tls-verify=false",
  `docker://${h}/bench:${tag}`,
  `oci:${dir}:${dstTag}`,
];
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const dropCaches = () => spawnSync("sync");

const results = { ours: [], skopeo: [] };
for (let i = 0; i < RUNS; i++) {
  for (const who of i % 2 ? ["skopeo", "ours"] : ["ours", "skopeo"]) {
    const dir = join(work, `out-${who}-${i}`);
    dropCaches();
    const r = await timed(who === "ours" ? oursCmd(host, "v1", dir) : skopeoCmd(host, "v1", dir));
    results[who].push(r);
    rmSync(dir, { recursive: true, force: true });
    console.error(
      `bench: run ${i + 1} ${who}: ${r.secs.toFixed(2)} s, ${r.rssMb.toFixed(0)} MB RSS`,
    );
  }
}

// update v1 → v2 through the counting proxy
const update = {};
for (const who of ["ours", "skopeo"]) {
  const dir = join(work, `upd-${who}`);
  await timed(
    who === "ours"
      ? oursCmd(`127.0.0.1:${proxyPort}`, "v1", dir)
      : skopeoCmd(`127.0.0.1:${proxyPort}`, "v1", dir),
  );
  proxied = 0;
  const r = await timed(
    who === "ours"
      ? oursCmd(`127.0.0.1:${proxyPort}`, "v2", dir)
      : skopeoCmd(`127.0.0.1:${proxyPort}`, "v2", dir),
  );
  update[who] = {
    bytes: proxied,
    secs: r.secs,
    line: who === "ours" ? JSON.parse(r.stdout) : undefined,
  };
  rmSync(dir, { recursive: true, force: true });
}

// one big layer: peak RSS
const big = {};
if (BIG_MB > 0) {
  for (const who of ["ours", "skopeo"]) {
    const dir = join(work, `big-${who}`);
    big[who] = await timed(
      who === "ours" ? oursCmd(host, "big", dir) : skopeoCmd(host, "big", dir),
    );
    rmSync(dir, { recursive: true, force: true });
  }
}

const mo = median(results.ours.map((r) => r.secs));
const ms = median(results.skopeo.map((r) => r.secs));
const totalMb = LAYERS * LAYER_MB;
const l = update.ours.line;
console.log(`## oci-fetch: copy docker:// → oci: (loopback docker-registry)

Image: ${LAYERS} layers × ${LAYER_MB} MiB of random data (≈${totalMb} MiB compressed), ${RUNS} runs each, alternating order; each copy into a fresh layout.
skopeo ${sh("skopeo", ["--version"]).trim().split(" ").pop()}, Node ${process.version}.

| tool | median wall time | runs (s) | median peak RSS |
|---|---|---|---|
| imagemode (oci-fetch copy, concurrency 6) | **${mo.toFixed(2)} s** | ${results.ours.map((r) => r.secs.toFixed(2)).join(", ")} | ${median(results.ours.map((r) => r.rssMb)).toFixed(0)} MB |
| skopeo copy | **${ms.toFixed(2)} s** | ${results.skopeo.map((r) => r.secs.toFixed(2)).join(", ")} | ${median(results.skopeo.map((r) => r.rssMb)).toFixed(0)} MB |
| ratio imagemode / skopeo | **${(mo / ms).toFixed(2)}×** | | |

Update v1 → v2 (v2 = v1 + one 5 MiB layer) into a layout holding v1, blob bytes counted by a proxy:

| tool | blob bytes over the wire | wall time |
|---|---|---|
| imagemode | ${update.ours.bytes} | ${update.ours.secs.toFixed(2)} s |
| skopeo | ${update.skopeo.bytes} | ${update.skopeo.secs.toFixed(2)} s |

imagemode reported: \`layers already present: ${l.present}; layers needed: ${l.needed} (${(l.bytesNeeded / 1e6).toFixed(1)} MB)\`.
${
  BIG_MB > 0
    ? `
One ${BIG_MB} MiB layer: imagemode ${big.ours.secs.toFixed(2)} s, peak RSS **${big.ours.rssMb.toFixed(0)} MB**; skopeo ${big.skopeo.secs.toFixed(2)} s, peak RSS ${big.skopeo.rssMb.toFixed(0)} MB.
`
    : ""
}`);
proxy.close();
process.exit(0);
