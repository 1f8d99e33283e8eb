/**
 * Worker threads that hash, (archive mode) compress and write content objects whose payload is
 * in memory — the per-object work of a commit or a layer import, spread over the cores. Each
 * worker makes the object's system calls synchronously (open, write, fsetxattr, fchmod,
 * futimes, close, rename: see direct-io.ts for why). The main thread keeps the tree; it sends
 * the payload and the pre-encoded headers and gets the checksum back.
 * A worker keeps the process alive only while it has jobs.
 *
 * The worker source is plain JavaScript run with `eval` (no file next to the bundle to find,
 * the same in the built package and in tests). Workers start on the first job and stop after a
 * second without work.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";

/** One content object to write. */
export interface ObjectJob {
  /** The bytes hashed before the payload (`contentChecksumPrefix(header)`). */
  prefix: Uint8Array;
  /** The whole payload. */
  data: Uint8Array;
  /** The temp file to create (in the repository's `tmp/`). */
  tmp: string;
  /** Archive: the framed `.filez` header for this payload size. */
  archiveHeader?: Uint8Array;
  /** Bare-user: the `user.ostreemeta` value. */
  ostreemeta?: Uint8Array;
  /** Bare: owner to set. */
  uid?: number;
  gid?: number;
  /** Bare: xattrs to set. */
  xattrs?: Array<[string, Uint8Array]>;
  /** Mode bits for fchmod (not archive). */
  chmod: number;
}

/** What a worker did with a job. */
export interface ObjectJobResult {
  checksum: string;
  /** False when the object was already present (nothing written). */
  written: boolean;
}

/** Repository facts every job shares. */
export interface ObjectWorkerConfig {
  /** `<repo>/objects`. */
  objectsDir: string;
  mode: "archive" | "bare" | "bare-user" | "bare-user-only";
  fsync: boolean;
  /** Absolute path of `@napi-rs/xattr` (needed for bare-user and bare with xattrs). */
  xattrModule: string | null;
}

/** The default number of object workers: the cores, at most 4. */
export function defaultObjectWorkers(): number {
  return Math.max(1, Math.min(4, availableParallelism()));
}

const IDLE_MS = 1000;
/**
 * Batches a worker may have at once. While a worker is busy, new jobs wait in its queue and go
 * in one message when a batch comes back: a message costs tens of microseconds, more than a
 * small object's write.
 */
const MAX_BATCHES_IN_FLIGHT = 2;

// Runs in each worker (CommonJS, `require` available in eval workers).
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const fs = require("node:fs");
const { createHash } = require("node:crypto");
const { deflateRawSync } = require("node:zlib");
const cfg = workerData;
const xattr = cfg.xattrModule ? require(cfg.xattrModule) : null;
const dirs = new Set();
const ext = cfg.mode === "archive" ? "filez" : "file";
function write(j) {
  const h = createHash("sha256");
  h.update(j.prefix);
  h.update(j.data);
  const csum = h.digest("hex");
  const dir = cfg.objectsDir + "/" + csum.slice(0, 2);
  const dest = dir + "/" + csum.slice(2) + "." + ext;
  if (fs.lstatSync(dest, { throwIfNoEntry: false }) !== undefined) return { checksum: csum, written: false };
  if (!dirs.has(dir)) {
    fs.mkdirSync(dir, { recursive: true });
    dirs.add(dir);
  }
  let fd = fs.openSync(j.tmp, "wx", 0o600);
  try {
    if (cfg.mode === "archive") {
      fs.writevSync(fd, [j.archiveHeader, deflateRawSync(j.data, { level: 6 })], 0);
    } else {
      if (j.data.byteLength > 0) fs.writeSync(fd, j.data, 0, j.data.byteLength, 0);
      if (cfg.mode === "bare") {
        fs.fchownSync(fd, j.uid, j.gid);
        fs.fchmodSync(fd, j.chmod);
        for (const [k, v] of j.xattrs || []) xattr.setAttributeSync(j.tmp, k, v);
      } else if (cfg.mode === "bare-user") {
        xattr.setAttributeSync(j.tmp, "user.ostreemeta", j.ostreemeta);
        fs.fchmodSync(fd, j.chmod);
      } else {
        fs.fchmodSync(fd, j.chmod);
      }
      fs.futimesSync(fd, 0, 0);
    }
    if (cfg.fsync) fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = -1;
    fs.renameSync(j.tmp, dest);
  } catch (e) {
    if (fd >= 0) {
      try { fs.closeSync(fd); } catch {}
    }
    try { fs.unlinkSync(j.tmp); } catch {}
    throw e;
  }
  return { checksum: csum, written: true };
}
// A batch is { buf, jobs }: every byte field of a job is [offset, length] into buf.
const view = (buf, r) => (r ? new Uint8Array(buf, r[0], r[1]) : undefined);
parentPort.on("message", ({ buf, jobs }) => {
  const out = [];
  for (const packed of jobs) {
    const j = {
      id: packed.id,
      tmp: packed.tmp,
      chmod: packed.chmod,
      uid: packed.uid,
      gid: packed.gid,
      prefix: view(buf, packed.prefix),
      data: view(buf, packed.data),
      archiveHeader: view(buf, packed.archiveHeader),
      ostreemeta: view(buf, packed.ostreemeta),
      xattrs: (packed.xattrs || []).map(([k, r]) => [k, view(buf, r)]),
    };
    try {
      out.push({ id: j.id, result: write(j) });
    } catch (e) {
      out.push({ id: j.id, error: { message: String((e && e.message) || e), code: e && e.code, syscall: e && e.syscall, path: e && e.path } });
    }
  }
  parentPort.postMessage(out);
});
`;

interface Pending {
  resolve: (r: ObjectJobResult) => void;
  reject: (e: unknown) => void;
}

interface Slot {
  worker: Worker;
  /** Jobs queued or sent and not answered yet. */
  outstanding: number;
  /** Batches sent and not answered yet (at most {@link MAX_BATCHES_IN_FLIGHT}). */
  batches: number;
  queue: Array<ObjectJob & { id: number }>;
}

type Range = [number, number];

/** A job as sent: byte fields are ranges of the batch's one buffer. */
interface PackedJob {
  id: number;
  tmp: string;
  chmod: number;
  uid?: number;
  gid?: number;
  prefix: Range;
  data: Range;
  archiveHeader?: Range;
  ostreemeta?: Range;
  xattrs?: Array<[string, Range]>;
}

/**
 * Packs a batch into one buffer that is moved (not cloned) to the worker: posting many small
 * typed arrays costs far more than copying their bytes once.
 */
function pack(jobs: Array<ObjectJob & { id: number }>): { buf: ArrayBuffer; jobs: PackedJob[] } {
  let size = 0;
  for (const j of jobs) {
    size += j.prefix.byteLength + j.data.byteLength;
    size += (j.archiveHeader?.byteLength ?? 0) + (j.ostreemeta?.byteLength ?? 0);
    for (const [, v] of j.xattrs ?? []) size += v.byteLength;
  }
  const bytes = new Uint8Array(size);
  let off = 0;
  const put = (b: Uint8Array): Range => {
    bytes.set(b, off);
    off += b.byteLength;
    return [off - b.byteLength, b.byteLength];
  };
  const out = jobs.map((j): PackedJob => {
    const p: PackedJob = {
      id: j.id,
      tmp: j.tmp,
      chmod: j.chmod,
      prefix: put(j.prefix),
      data: put(j.data),
    };
    if (j.uid !== undefined) p.uid = j.uid;
    if (j.gid !== undefined) p.gid = j.gid;
    if (j.archiveHeader) p.archiveHeader = put(j.archiveHeader);
    if (j.ostreemeta) p.ostreemeta = put(j.ostreemeta);
    if (j.xattrs) p.xattrs = j.xattrs.map(([k, v]): [string, Range] => [k, put(v)]);
    return p;
  });
  return { buf: bytes.buffer, jobs: out };
}

interface WorkerReply {
  id: number;
  result?: ObjectJobResult;
  error?: { message: string; code?: string; syscall?: string; path?: string };
}

/** A small pool of object-writing workers for one repository. */
export class ObjectWorkers {
  private slots: Slot[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private flushScheduled = false;
  private idleTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly config: ObjectWorkerConfig,
    private readonly size: number,
  ) {}

  /** Hashes and writes one object in a worker. */
  write(job: ObjectJob): Promise<ObjectJobResult> {
    if (this.idleTimer) {
      clearTimeout(this.idleTimer);
      this.idleTimer = null;
    }
    if (this.slots.length === 0) this.start();
    const id = this.nextId++;
    // least outstanding work first
    let slot = this.slots[0]!;
    for (const s of this.slots) if (s.outstanding < slot.outstanding) slot = s;
    // a worker with work keeps the process alive (the caller awaits its answer); an idle one not
    if (slot.outstanding++ === 0) slot.worker.ref();
    slot.queue.push({ ...job, id });
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // jobs submitted before the main thread next yields travel in one message per worker
      setImmediate(() => this.flush());
    }
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }

  private start(): void {
    for (let i = 0; i < this.size; i++) {
      const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: this.config });
      worker.unref();
      const slot: Slot = { worker, outstanding: 0, batches: 0, queue: [] };
      worker.on("message", (replies: WorkerReply[]) => {
        slot.batches--;
        this.send(slot);
        for (const r of replies) {
          slot.outstanding--;
          const p = this.pending.get(r.id);
          this.pending.delete(r.id);
          if (!p) continue;
          if (r.error) {
            const e = Object.assign(new Error(r.error.message), {
              code: r.error.code,
              syscall: r.error.syscall,
              path: r.error.path,
            });
            p.reject(e);
          } else p.resolve(r.result!);
        }
        if (slot.outstanding === 0) slot.worker.unref();
        if (this.pending.size === 0) this.scheduleIdleStop();
      });
      worker.on("error", (e) => this.failAll(e));
      this.slots.push(slot);
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    for (const s of this.slots) this.send(s);
  }

  /** Sends a slot's queued jobs as one batch, unless the worker has enough to do. */
  private send(s: Slot): void {
    if (s.queue.length === 0 || s.batches >= MAX_BATCHES_IN_FLIGHT) return;
    const batch = pack(s.queue);
    s.queue = [];
    s.batches++;
    s.worker.postMessage(batch, [batch.buf]);
  }

  private failAll(e: unknown): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
    this.stop();
  }

  private scheduleIdleStop(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      if (this.pending.size === 0) this.stop();
    }, IDLE_MS);
    this.idleTimer.unref();
  }

  /** Stops the workers (they start again on the next job). */
  stop(): void {
    const slots = this.slots;
    this.slots = [];
    for (const s of slots) void s.worker.terminate();
  }
}
