/**
 * The HTTP layer of the registry client: keep-alive agents per TLS setting (node:http — no
 * parser to compile at start-up, the native llhttp), retries with exponential
 * backoff and jitter on 429/5xx/connection resets (honoring `Retry-After`), and the one place
 * where HTTP and OCI error codes become imagemode error codes.
 */
import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import { rootCertificates } from "node:tls";
import { type ErrorCode, ImageModeError, isImageModeError, throwIfAborted } from "@imagemode/core";

/** TLS settings for one registry. */
export interface TlsOptions {
  /** Extra CA certificates (PEM) to trust, in addition to the system ones. */
  ca?: string | Buffer | (string | Buffer)[];
  /** Skip certificate verification (skopeo `--tls-verify=false`). Only when asked. */
  insecureSkipVerify?: boolean;
}

/** Retry policy. */
export interface RetryOptions {
  /** How many times a request is retried (default 4). */
  maxRetries?: number;
  /** First backoff delay in ms (default 200); doubles each attempt, with ±50 % jitter. */
  baseDelayMs?: number;
  /** Longest wait in ms, also caps `Retry-After` (default 30 000). */
  maxDelayMs?: number;
  /** Injected sleep (tests). */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Injected randomness in [0, 1) for the jitter. */
  random?: () => number;
  /** Injected wall clock (ms since epoch) for HTTP-date `Retry-After`. */
  now?: () => number;
}

/** Options of {@link HttpClient}. */
export interface HttpClientOptions extends RetryOptions {
  /** Connections per origin (default 8). */
  connections?: number;
  /** Connect/headers timeout in ms (default 30 000). */
  timeoutMs?: number;
  /** Idle body timeout in ms (default 60 000). */
  bodyTimeoutMs?: number;
}

/** A request to send. */
export interface HttpRequest {
  method: "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";
  url: URL | string;
  headers?: Record<string, string>;
  /** A body. Streams are not replayable, so requests with a stream body are never retried. */
  body?: Uint8Array | string | AsyncIterable<Uint8Array>;
  signal?: AbortSignal;
  tls?: TlsOptions;
  /** Retry on retriable statuses and errors (default true for replayable bodies). */
  retry?: boolean;
}

/** A response body: iterate it, or `dump()` it, or `destroy()` it. */
export interface HttpBody extends AsyncIterable<Uint8Array> {
  /** Reads and discards the rest, so the connection can be reused. */
  dump(): Promise<void>;
  /** Drops the connection. */
  destroy(): void;
}

/** A response; `body` must be consumed or dumped. */
export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: HttpBody;
  url: URL;
}

/** Statuses that are retried. */
export const RETRIABLE_STATUSES: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504]);

const RETRIABLE_ERRORS = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "EPIPE",
  "ETIMEDOUT",
  "EAI_AGAIN",
  "ERR_STREAM_PREMATURE_CLOSE",
]);

/** True for network errors worth retrying (resets, timeouts, premature closes). */
export function isRetriableError(e: unknown): boolean {
  let cur: unknown = e;
  for (let i = 0; i < 4 && cur; i++) {
    const c = cur as { code?: unknown; cause?: unknown; data?: Record<string, unknown> };
    if (typeof c.code === "string" && RETRIABLE_ERRORS.has(c.code)) return true;
    if (
      isImageModeError(cur) &&
      typeof c.data?.errno === "string" &&
      RETRIABLE_ERRORS.has(c.data.errno)
    )
      return true;
    cur = c.cause;
  }
  return false;
}

/** Parses `Retry-After` (seconds or an HTTP date) into milliseconds from `now`. */
export function parseRetryAfter(
  value: string | undefined,
  now: number = Date.now(),
): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, t - now);
}

/** The backoff before retry number `attempt` (0-based): base·2^attempt·(0.5…1.5), capped. */
export function backoffDelay(
  attempt: number,
  o: Pick<RetryOptions, "baseDelayMs" | "maxDelayMs" | "random"> = {},
): number {
  const base = o.baseDelayMs ?? 200;
  const max = o.maxDelayMs ?? 30_000;
  const jitter = 0.5 + (o.random ?? Math.random)();
  return Math.min(max, Math.round(base * 2 ** attempt * jitter));
}

/** Sleeps, waking early with `ABORTED` when the signal fires. */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new ImageModeError("ABORTED", "operation aborted"));
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(new ImageModeError("ABORTED", "operation aborted"));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Header value as one string. */
export function header(h: HttpResponse["headers"], name: string): string | undefined {
  const v = h[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** The error codes in an OCI distribution error body (`{"errors":[{"code":…}]}`). */
export function parseOciErrors(body: string): { code: string; message: string }[] {
  try {
    const doc = JSON.parse(body) as { errors?: { code?: unknown; message?: unknown }[] };
    if (!Array.isArray(doc.errors)) return [];
    return doc.errors.map((e) => ({
      code: String(e.code ?? ""),
      message: String(e.message ?? ""),
    }));
  } catch {
    return [];
  }
}

/**
 * Maps an HTTP status and OCI error codes to an imagemode code: 401 → UNAUTHORIZED,
 * 403 → DENIED, 404 and the *_UNKNOWN codes → NOT_FOUND, digest/size codes → *_MISMATCH,
 * 5xx/429 and the rest → REMOTE.
 */
export function codeForHttp(status: number, ociCodes: readonly string[] = []): ErrorCode {
  if (status === 401 || ociCodes.includes("UNAUTHORIZED")) return "UNAUTHORIZED";
  if (status === 403 || ociCodes.includes("DENIED")) return "DENIED";
  if (
    status === 404 ||
    ociCodes.some(
      (c) =>
        c === "MANIFEST_UNKNOWN" ||
        c === "BLOB_UNKNOWN" ||
        c === "NAME_UNKNOWN" ||
        c === "BLOB_UPLOAD_UNKNOWN",
    )
  )
    return "NOT_FOUND";
  if (ociCodes.includes("DIGEST_INVALID")) return "DIGEST_MISMATCH";
  if (ociCodes.includes("SIZE_INVALID")) return "SIZE_MISMATCH";
  if (ociCodes.includes("UNSUPPORTED") || status === 405 || status === 415) return "UNSUPPORTED";
  if (
    ociCodes.includes("MANIFEST_INVALID") ||
    ociCodes.includes("NAME_INVALID") ||
    ociCodes.includes("TAG_INVALID")
  )
    return "INVALID_ARGUMENT";
  return "REMOTE";
}

/** Builds the imagemode error for a failed response (reads at most 64 KiB of its body). */
export async function responseError(
  res: HttpResponse,
  op: string,
  what: string,
): Promise<ImageModeError> {
  let text = "";
  try {
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of res.body) {
      n += c.length;
      if (n > 65536) break;
      chunks.push(Buffer.from(c));
    }
    text = Buffer.concat(chunks).toString("utf8");
  } catch {
    // the body is only for the message
  }
  const errors = parseOciErrors(text);
  const code = codeForHttp(
    res.status,
    errors.map((e) => e.code),
  );
  const detail = errors.length
    ? errors.map((e) => `${e.code}: ${e.message}`).join("; ")
    : text.slice(0, 200).trim();
  return new ImageModeError(code, `${what}: HTTP ${res.status}${detail ? ` (${detail})` : ""}`, {
    op,
    data: { status: res.status, url: redact(res.url), ...(errors.length ? { errors } : {}) },
  });
}

/** The URL without credentials or query (for messages). */
export function redact(u: URL): string {
  return `${u.protocol}//${u.host}${u.pathname}`;
}

/** Maps a network error to an imagemode error (`REMOTE`, `ABORTED`). */
export function networkError(
  e: unknown,
  op: string,
  url: URL,
  signal?: AbortSignal,
): ImageModeError {
  if (isImageModeError(e)) return e;
  if (signal?.aborted) return new ImageModeError("ABORTED", "operation aborted", { op, cause: e });
  const err = e as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = err.code ?? err.cause?.code;
  const msg = err.cause?.message ?? err.message ?? String(e);
  const tls =
    typeof code === "string" && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ERR_SSL/.test(code);
  const hint = tls
    ? " (TLS verification failed: pass the registry's CA, or disable verification for it explicitly)"
    : "";
  return new ImageModeError("REMOTE", `${op} ${redact(url)}: ${msg}${hint}`, {
    op,
    cause: e,
    data: { url: redact(url), ...(code ? { errno: code } : {}), ...(tls ? { tls: true } : {}) },
  });
}

function bodyOf(res: IncomingMessage): HttpBody {
  return {
    [Symbol.asyncIterator]: () => res[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>,
    dump: () =>
      new Promise<void>((resolve) => {
        // a complete but unread body still holds its keep-alive socket until it is read
        if (res.readableEnded || res.destroyed) return resolve();
        res.once("end", resolve);
        res.once("close", resolve);
        res.once("error", () => resolve());
        res.resume();
      }),
    destroy: () => {
      res.destroy();
    },
  };
}

async function writeBody(req: http.ClientRequest, body: HttpRequest["body"]): Promise<void> {
  if (body === undefined) {
    req.end();
    return;
  }
  if (typeof body === "string" || body instanceof Uint8Array) {
    req.end(body);
    return;
  }
  for await (const chunk of body) {
    if (req.destroyed) return;
    if (!req.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          req.off("drain", done);
          req.off("close", done);
          resolve();
        };
        req.once("drain", done);
        req.once("close", done);
      });
    }
  }
  req.end();
}

/**
 * An HTTP client over node:http/https with one keep-alive pool per TLS setting, retries and
 * error mapping. Close it with {@link HttpClient.close} when done.
 */
export class HttpClient {
  private readonly agents = new Map<string, http.Agent>();
  readonly options: HttpClientOptions;

  constructor(options: HttpClientOptions = {}) {
    this.options = options;
  }

  private agent(url: URL, tls: TlsOptions | undefined): http.Agent {
    const secure = url.protocol === "https:";
    const key = JSON.stringify({
      secure,
      ca: tls?.ca ? String(tls.ca) : undefined,
      insecure: tls?.insecureSkipVerify === true,
    });
    let a = this.agents.get(key);
    if (!a) {
      const common = {
        keepAlive: true,
        maxSockets: this.options.connections ?? 8,
        scheduling: "lifo" as const,
      };
      a = secure
        ? new https.Agent({
            ...common,
            rejectUnauthorized: tls?.insecureSkipVerify !== true,
            ...(tls?.ca
              ? {
                  ca: [
                    ...rootCertificates,
                    ...(Array.isArray(tls.ca) ? tls.ca : [tls.ca]).map(String),
                  ],
                }
              : {}),
          })
        : new http.Agent(common);
      this.agents.set(key, a);
    }
    return a;
  }

  private once(url: URL, req: HttpRequest): Promise<HttpResponse> {
    return new Promise<HttpResponse>((resolve, reject) => {
      const mod = url.protocol === "https:" ? https : url.protocol === "http:" ? http : undefined;
      if (!mod)
        return reject(
          new ImageModeError("INVALID_ARGUMENT", `unsupported URL scheme ${url.protocol}`),
        );
      const signal = req.signal;
      if (signal?.aborted) return reject(new ImageModeError("ABORTED", "operation aborted"));
      const r = mod.request(url, {
        method: req.method,
        headers: { "user-agent": "imagemode-oci-fetch", ...req.headers },
        agent: this.agent(url, req.tls),
      });
      let response: IncomingMessage | undefined;
      // the signal is handled here, not by node (whose AbortError on a finished request could go unheard)
      const onAbort = () => {
        const e = new ImageModeError("ABORTED", "operation aborted");
        r.destroy(e);
        response?.destroy(e);
      };
      const release = () => signal?.removeEventListener("abort", onAbort);
      signal?.addEventListener("abort", onAbort, { once: true });
      const timeout = this.options.timeoutMs ?? 30_000;
      r.setTimeout(timeout, () => {
        const e = Object.assign(new Error(`no data for ${timeout} ms`), { code: "ETIMEDOUT" });
        r.destroy(e);
      });
      // errors after the response (an abort, a reset) reach the body's reader; never unhandled
      r.on("error", (e) => {
        if (!response) release();
        reject(e);
      });
      r.once("response", (res) => {
        response = res;
        res.on("error", () => {});
        res.once("close", release);
        res.setTimeout(this.options.bodyTimeoutMs ?? 60_000, () => {
          res.destroy(Object.assign(new Error("body timeout"), { code: "ETIMEDOUT" }));
        });
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: bodyOf(res), url });
      });
      writeBody(r, req.body).catch((e) => r.destroy(e));
    });
  }

  /**
   * Sends a request. Retriable statuses (429, 5xx) and network errors are retried with backoff;
   * the final response is returned whatever its status (callers map non-2xx with
   * {@link responseError}). Network errors that remain become `REMOTE`.
   */
  async request(req: HttpRequest, op = "oci.http"): Promise<HttpResponse> {
    const url = typeof req.url === "string" ? new URL(req.url) : req.url;
    const replayable =
      req.body === undefined || typeof req.body === "string" || req.body instanceof Uint8Array;
    const retry = (req.retry ?? true) && replayable;
    const maxRetries = retry ? (this.options.maxRetries ?? 4) : 0;
    const sleep = this.options.sleep ?? abortableSleep;
    for (let attempt = 0; ; attempt++) {
      throwIfAborted(req.signal, op);
      let res: HttpResponse;
      try {
        res = await this.once(url, req);
      } catch (e) {
        if (attempt < maxRetries && !req.signal?.aborted && isRetriableError(e)) {
          await sleep(backoffDelay(attempt, this.options), req.signal);
          continue;
        }
        throw networkError(e, op, url, req.signal);
      }
      if (attempt < maxRetries && RETRIABLE_STATUSES.has(res.status)) {
        const ra = parseRetryAfter(
          header(res.headers, "retry-after"),
          (this.options.now ?? Date.now)(),
        );
        await res.body.dump();
        const delay = Math.min(
          this.options.maxDelayMs ?? 30_000,
          Math.max(ra ?? 0, backoffDelay(attempt, this.options)),
        );
        await sleep(delay, req.signal);
        continue;
      }
      return res;
    }
  }

  /** Closes every connection pool. */
  async close(): Promise<void> {
    for (const a of this.agents.values()) a.destroy();
    this.agents.clear();
  }
}
