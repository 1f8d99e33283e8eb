/**
 * A repository in a registry speaking the OCI distribution API v2, as a core `Target`:
 * resolve, fetch (streamed, verified, resumed with `Range`), exists, push (monolithic, chunked,
 * cross-repository mount) and tag.
 */
import {
  type ByteStream,
  type Descriptor,
  type Digest,
  digestOf,
  ImageModeError,
  isDigest,
  isImageModeError,
  isIndexMediaType,
  isManifestMediaType,
  type OpOptions,
  readAll,
  type Target,
  throwIfAborted,
  toByteStream,
  verify,
  verifyBytes,
} from "@imagemode/core";
import { AuthSession, type Credentials, repositoryScope, type TokenRequester } from "./auth.js";
import {
  abortableSleep,
  backoffDelay,
  HttpClient,
  type HttpResponse,
  header,
  isRetriableError,
  networkError,
  responseError,
  type TlsOptions,
} from "./http.js";
import { MANIFEST_ACCEPT, MAX_MANIFEST_BYTES } from "./manifest.js";
import { type ImageReference, parseReference } from "./reference.js";

/** Options of {@link RegistryRepository}. */
export interface RegistryOptions {
  /** The HTTP client (shared connection pools); one is created (and owned) when absent. */
  http?: HttpClient;
  /** Credentials for this registry, or a lookup (see `lookupCredentials`). */
  credentials?:
    | Credentials
    | ((registry: string, repository: string) => Promise<Credentials | undefined>);
  /** TLS settings: a private CA, or skipping verification. */
  tls?: TlsOptions;
  /**
   * Allow plain HTTP (and skip TLS verification), like skopeo's `--tls-verify=false` or an
   * `insecure = true` registry in registries.conf. HTTPS is tried first.
   */
  insecure?: boolean;
  /** Use plain HTTP without trying HTTPS first. */
  plainHttp?: boolean;
  /** Blob uploads larger than this go in PATCH chunks of this size (default: monolithic PUT). */
  chunkSize?: number;
  /** How often a blob download is resumed after a dropped connection (default 5). */
  maxResumes?: number;
}

const OP_FETCH = "oci.fetch.blob";

/** A repository in an OCI distribution registry. */
export class RegistryRepository implements Target {
  readonly registry: string;
  readonly repository: string;
  private readonly http: HttpClient;
  private readonly ownsHttp: boolean;
  private readonly options: RegistryOptions;
  private readonly auth: AuthSession;
  private base: Promise<URL> | undefined;
  private creds: Promise<Credentials | undefined> | undefined;

  constructor(name: { registry: string; repository: string }, options: RegistryOptions = {}) {
    this.registry = name.registry;
    this.repository = name.repository;
    this.options = options;
    this.ownsHttp = options.http === undefined;
    this.http = options.http ?? new HttpClient();
    this.auth = new AuthSession(() => this.credentials(), this.requestToken);
  }

  /** Opens the repository a reference names (`host/repo[:tag]`). */
  static fromReference(
    ref: string | ImageReference,
    options: RegistryOptions = {},
  ): RegistryRepository {
    const r = typeof ref === "string" ? parseReference(ref) : ref;
    return new RegistryRepository({ registry: r.registry, repository: r.repository }, options);
  }

  /** Closes the HTTP client when this repository created it. */
  async close(): Promise<void> {
    if (this.ownsHttp) await this.http.close();
  }

  private credentials(): Promise<Credentials | undefined> {
    if (!this.creds) {
      const c = this.options.credentials;
      this.creds = typeof c === "function" ? c(this.registry, this.repository) : Promise.resolve(c);
    }
    return this.creds;
  }

  private get tls(): TlsOptions | undefined {
    if (this.options.insecure) return { ...this.options.tls, insecureSkipVerify: true };
    return this.options.tls;
  }

  private hostForUrl(): string {
    return this.registry === "docker.io" ? "registry-1.docker.io" : this.registry;
  }

  /** The base URL (`https://host`), found by pinging `/v2/` (HTTPS first, HTTP when insecure). */
  private baseUrl(signal?: AbortSignal): Promise<URL> {
    if (!this.base) {
      this.base = this.ping(signal);
      this.base.catch(() => {
        this.base = undefined;
      });
    }
    return this.base;
  }

  private async ping(signal?: AbortSignal): Promise<URL> {
    const host = this.hostForUrl();
    const schemes = this.options.plainHttp
      ? ["http"]
      : this.options.insecure
        ? ["https", "http"]
        : ["https"];
    let last: unknown;
    for (const scheme of schemes) {
      const url = new URL(`${scheme}://${host}/v2/`);
      try {
        const res = await this.http.request(
          {
            method: "GET",
            url,
            tls: this.tls,
            ...(signal ? { signal } : {}),
            retry: scheme === schemes[schemes.length - 1],
          },
          "oci.registry.ping",
        );
        await res.body.dump().catch(() => {});
        if (res.status === 401)
          await this.auth.challenge(
            header(res.headers, "www-authenticate"),
            repositoryScope(this.repository, ["pull"]),
          );
        else if (res.status >= 400 && res.status !== 404)
          throw await responseError(res, "oci.registry.ping", `ping ${host}`);
        return new URL(`${scheme}://${host}`);
      } catch (e) {
        if (signal?.aborted) throw e;
        last = e;
      }
    }
    throw last;
  }

  private requestToken: TokenRequester = async ({ realm, service, scopes, credentials }) => {
    const url = new URL(realm);
    const headers: Record<string, string> = {};
    let method: "GET" | "POST" = "GET";
    let body: string | undefined;
    if (credentials && "identityToken" in credentials) {
      method = "POST";
      const form = new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: credentials.identityToken,
        client_id: "imagemode",
      });
      if (service) form.set("service", service);
      form.set("scope", scopes.join(" "));
      body = form.toString();
      headers["content-type"] = "application/x-www-form-urlencoded";
    } else {
      if (service) url.searchParams.set("service", service);
      for (const s of scopes) url.searchParams.append("scope", s);
      if (credentials)
        headers.authorization = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString("base64")}`;
    }
    const res = await this.http.request(
      { method, url, headers, ...(body === undefined ? {} : { body }), tls: this.tls },
      "oci.registry.token",
    );
    if (res.status !== 200)
      throw await responseError(res, "oci.registry.token", `token from ${url.host}`);
    const doc = JSON.parse(
      Buffer.from(await readAll(res.body, 1 << 20, { what: "token response" })).toString("utf8"),
    ) as Record<string, unknown>;
    const token =
      typeof doc.token === "string"
        ? doc.token
        : typeof doc.access_token === "string"
          ? doc.access_token
          : undefined;
    if (!token)
      throw new ImageModeError("UNAUTHORIZED", `token endpoint ${url.host} returned no token`, {
        op: "oci.registry.token",
      });
    return { token, ...(typeof doc.expires_in === "number" ? { expiresIn: doc.expires_in } : {}) };
  };

  /**
   * Sends an authenticated request to `path` (relative to the registry, or an absolute upload
   * URL), answering one auth challenge. Non-2xx responses are returned for the caller to map.
   */
  private async send(
    method: "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE",
    path: string,
    o: {
      headers?: Record<string, string>;
      body?: Uint8Array | string | AsyncIterable<Uint8Array>;
      push?: boolean;
      signal?: AbortSignal;
      op: string;
    },
  ): Promise<HttpResponse> {
    const base = await this.baseUrl(o.signal);
    let url = new URL(path, base);
    const scope = repositoryScope(this.repository, o.push ? ["pull", "push"] : ["pull"]);
    for (let attempt = 0; ; attempt++) {
      const authz = url.host === base.host ? await this.auth.authorization(scope) : undefined;
      const headers: Record<string, string> = {
        ...o.headers,
        ...(authz ? { authorization: authz } : {}),
      };
      const res = await this.http.request(
        {
          method,
          url,
          headers,
          ...(o.body === undefined ? {} : { body: o.body }),
          tls: this.tls,
          ...(o.signal ? { signal: o.signal } : {}),
        },
        o.op,
      );
      if (
        res.status === 401 &&
        attempt === 0 &&
        (o.body === undefined || typeof o.body === "string" || o.body instanceof Uint8Array)
      ) {
        const www = header(res.headers, "www-authenticate");
        await res.body.dump().catch(() => {});
        if (await this.auth.challenge(www, scope)) continue;
        throw new ImageModeError(
          "UNAUTHORIZED",
          `${this.registry}: authentication required${www ? "" : " (no challenge offered)"}`,
          {
            op: o.op,
            data: { registry: this.registry, repository: this.repository },
          },
        );
      }
      if (
        (res.status === 307 || res.status === 302 || res.status === 301 || res.status === 303) &&
        (method === "GET" || method === "HEAD") &&
        attempt < 5
      ) {
        const loc = header(res.headers, "location");
        await res.body.dump().catch(() => {});
        if (!loc)
          throw new ImageModeError("REMOTE", `redirect without Location from ${this.registry}`, {
            op: o.op,
          });
        url = new URL(loc, url);
        continue;
      }
      return res;
    }
  }

  private manifestPath(ref: string): string {
    return `/v2/${this.repository}/manifests/${ref}`;
  }

  private blobPath(d: Digest): string {
    return `/v2/${this.repository}/blobs/${d}`;
  }

  /** Resolves a tag or digest to the manifest's descriptor (HEAD, falling back to GET). */
  async resolve(reference: string, options: OpOptions = {}): Promise<Descriptor> {
    const op = "oci.registry.resolve";
    const what = `${this.registry}/${this.repository}:${reference}`;
    const res = await this.send("HEAD", this.manifestPath(reference), {
      headers: { accept: MANIFEST_ACCEPT.join(", ") },
      ...sig(options),
      op,
    });
    await res.body.dump().catch(() => {});
    if (res.status === 404)
      throw new ImageModeError("NOT_FOUND", `manifest ${what} not found`, {
        op,
        data: { reference: what },
      });
    if (res.status >= 400) {
      throw new ImageModeError(
        res.status === 403 ? "DENIED" : res.status === 401 ? "UNAUTHORIZED" : "REMOTE",
        `resolve ${what}: HTTP ${res.status}`,
        { op, data: { status: res.status } },
      );
    }
    const digest = header(res.headers, "docker-content-digest");
    const mediaType = header(res.headers, "content-type")?.split(";")[0]?.trim();
    const size = Number(header(res.headers, "content-length"));
    if (
      digest &&
      isDigest(digest) &&
      mediaType &&
      (isManifestMediaType(mediaType) || isIndexMediaType(mediaType)) &&
      Number.isSafeInteger(size)
    ) {
      if (isDigest(reference) && reference !== digest) {
        throw new ImageModeError("DIGEST_MISMATCH", `registry answered ${digest} for ${what}`, {
          op,
          data: { expected: reference, actual: digest },
        });
      }
      if (size > MAX_MANIFEST_BYTES)
        throw new ImageModeError(
          "SIZE_MISMATCH",
          `manifest ${what} is ${size} bytes, over the limit of ${MAX_MANIFEST_BYTES}`,
          { op, data: { size, limit: MAX_MANIFEST_BYTES } },
        );
      return { mediaType, digest, size };
    }
    return (await this.fetchManifest(reference, options)).descriptor;
  }

  /**
   * GETs a manifest by tag or digest: bytes (capped at {@link MAX_MANIFEST_BYTES}) and
   * descriptor. A by-digest request is checked against the digest.
   */
  async fetchManifest(
    reference: string,
    options: OpOptions = {},
  ): Promise<{ descriptor: Descriptor; bytes: Uint8Array }> {
    const op = "oci.registry.manifest";
    const what = `${this.registry}/${this.repository}:${reference}`;
    const res = await this.send("GET", this.manifestPath(reference), {
      headers: { accept: MANIFEST_ACCEPT.join(", ") },
      ...sig(options),
      op,
    });
    if (res.status >= 400) throw await responseError(res, op, `manifest ${what}`);
    const declared = Number(header(res.headers, "content-length"));
    if (Number.isSafeInteger(declared) && declared > MAX_MANIFEST_BYTES) {
      res.body.destroy();
      throw new ImageModeError(
        "SIZE_MISMATCH",
        `manifest ${what} is ${declared} bytes, over the limit of ${MAX_MANIFEST_BYTES}`,
        { op, data: { size: declared, limit: MAX_MANIFEST_BYTES } },
      );
    }
    let bytes: Uint8Array;
    try {
      bytes = await readAll(res.body, MAX_MANIFEST_BYTES, {
        what: `manifest ${what}`,
        ...sig(options),
      });
    } catch (e) {
      res.body.destroy();
      throw e instanceof ImageModeError
        ? new ImageModeError(e.code, e.message, { op, data: e.data, cause: e })
        : networkError(e, op, res.url, options.signal);
    }
    const mediaType = header(res.headers, "content-type")?.split(";")[0]?.trim() ?? "";
    let digest: Digest;
    if (isDigest(reference)) {
      verifyBytes(bytes, { digest: reference, size: bytes.byteLength });
      digest = reference;
    } else {
      digest = digestOf(bytes);
      const claimed = header(res.headers, "docker-content-digest");
      if (claimed?.startsWith("sha256:") && claimed !== digest) {
        throw new ImageModeError(
          "DIGEST_MISMATCH",
          `manifest ${what}: registry claims ${claimed}, content is ${digest}`,
          { op, data: { expected: claimed, actual: digest } },
        );
      }
    }
    return {
      descriptor: {
        mediaType: declaredMediaType(bytes) ?? mediaType,
        digest,
        size: bytes.byteLength,
      },
      bytes,
    };
  }

  /** True when the blob (or manifest) exists in this repository. */
  async exists(d: Descriptor, options: OpOptions = {}): Promise<boolean> {
    const path =
      isManifestMediaType(d.mediaType) || isIndexMediaType(d.mediaType)
        ? this.manifestPath(d.digest)
        : this.blobPath(d.digest);
    const res = await this.send("HEAD", path, {
      ...(isManifestMediaType(d.mediaType) || isIndexMediaType(d.mediaType)
        ? { headers: { accept: MANIFEST_ACCEPT.join(", ") } }
        : {}),
      ...sig(options),
      op: "oci.registry.exists",
    });
    await res.body.dump().catch(() => {});
    if (res.status === 404) return false;
    if (res.status >= 200 && res.status < 300) return true;
    throw new ImageModeError(
      res.status === 401 ? "UNAUTHORIZED" : res.status === 403 ? "DENIED" : "REMOTE",
      `HEAD ${d.digest}: HTTP ${res.status}`,
      {
        op: "oci.registry.exists",
        data: { status: res.status, digest: d.digest },
      },
    );
  }

  /**
   * Streams a blob (or manifest) verified against the descriptor. A connection dropped
   * mid-blob is resumed with `Range: bytes=N-`; retries back off with jitter.
   */
  async fetch(d: Descriptor, options: OpOptions = {}): Promise<ByteStream> {
    if (isManifestMediaType(d.mediaType) || isIndexMediaType(d.mediaType)) {
      const { bytes } = await this.fetchManifest(d.digest, options);
      verifyBytes(bytes, d);
      return toByteStream(bytes);
    }
    const first = await this.openBlob(d, 0, options);
    return verify(this.blobStream(d, first, options), d, sig(options));
  }

  /**
   * Streams a blob like {@link RegistryRepository.fetch} (resumed with `Range`) but without
   * checking it: for callers whose sink verifies anyway, like `copy()` into a `Target`, whose
   * `push` verifies by contract. Saves hashing every byte twice.
   */
  async fetchRaw(d: Descriptor, options: OpOptions = {}): Promise<ByteStream> {
    if (isManifestMediaType(d.mediaType) || isIndexMediaType(d.mediaType))
      return this.fetch(d, options);
    const first = await this.openBlob(d, 0, options);
    return this.blobStream(d, first, options);
  }

  private async openBlob(d: Descriptor, offset: number, options: OpOptions): Promise<HttpResponse> {
    const res = await this.send("GET", this.blobPath(d.digest), {
      headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
      ...sig(options),
      op: OP_FETCH,
    });
    if (res.status >= 400) throw await responseError(res, OP_FETCH, `blob ${d.digest}`);
    if (offset > 0 && res.status !== 206 && res.status !== 200)
      throw await responseError(res, OP_FETCH, `blob ${d.digest}`);
    return res;
  }

  private async *blobStream(d: Descriptor, first: HttpResponse, options: OpOptions): ByteStream {
    let offset = 0;
    let res: HttpResponse | undefined = first;
    let resumes = 0;
    const maxResumes = this.options.maxResumes ?? 5;
    const sleep = this.http.options.sleep ?? abortableSleep;
    for (;;) {
      if (!res) {
        res = await this.openBlob(d, offset, options);
      }
      // a server that ignores Range answers 200 with the whole blob: skip what we have
      let skip = offset > 0 && res.status === 200 ? offset : 0;
      const before = offset;
      try {
        for await (const chunk of res.body as AsyncIterable<Buffer>) {
          throwIfAborted(options.signal, OP_FETCH);
          let c: Uint8Array = chunk;
          if (skip > 0) {
            if (c.byteLength <= skip) {
              skip -= c.byteLength;
              continue;
            }
            c = c.subarray(skip);
            skip = 0;
          }
          offset += c.byteLength;
          yield c;
        }
      } catch (e) {
        res.body.destroy();
        if (options.signal?.aborted) throw networkError(e, OP_FETCH, res.url, options.signal);
        if (isImageModeError(e) || !isRetriableError(e) || resumes >= maxResumes)
          throw networkError(e, OP_FETCH, res.url, options.signal);
        resumes++;
        options.onProgress?.({
          type: "warn",
          task: OP_FETCH,
          id: d.digest,
          message: `connection lost at byte ${offset} of ${d.size}; resuming`,
          code: "RESUME",
        });
        await sleep(backoffDelay(resumes - 1, this.http.options), options.signal);
        res = undefined;
        continue;
      }
      if (offset >= d.size) return;
      // the body ended short without an error: resume as well
      resumes++;
      if (resumes > maxResumes || offset === before) return; // verify() reports the short size
      options.onProgress?.({
        type: "warn",
        task: OP_FETCH,
        id: d.digest,
        message: `body ended at byte ${offset} of ${d.size}; resuming`,
        code: "RESUME",
      });
      res = undefined;
    }
  }

  /** Tries a cross-repository mount of a blob from `fromRepository` on the same registry. */
  async mount(d: Descriptor, fromRepository: string, options: OpOptions = {}): Promise<boolean> {
    const op = "oci.registry.mount";
    const res = await this.send(
      "POST",
      `/v2/${this.repository}/blobs/uploads/?mount=${encodeURIComponent(d.digest)}&from=${encodeURIComponent(fromRepository)}`,
      {
        push: true,
        body: "",
        ...sig(options),
        op,
      },
    );
    await res.body.dump().catch(() => {});
    if (res.status === 201) return true;
    if (res.status === 202) {
      const loc = header(res.headers, "location");
      if (loc) {
        const del = await this.send("DELETE", loc, { push: true, ...sig(options), op }).catch(
          () => undefined,
        );
        await del?.body.dump().catch(() => {});
      }
      return false;
    }
    throw await responseError(res, op, `mount ${d.digest}`);
  }

  /**
   * Uploads a blob (monolithic PUT, or PATCH chunks when `chunkSize` is set) or a manifest
   * (PUT by digest). Content is verified while it streams; a mismatch cancels the upload.
   */
  async push(
    d: Descriptor,
    content: ByteStream | Uint8Array,
    options: OpOptions = {},
  ): Promise<void> {
    if (isManifestMediaType(d.mediaType) || isIndexMediaType(d.mediaType)) {
      const bytes =
        content instanceof Uint8Array
          ? content
          : await readAll(content, MAX_MANIFEST_BYTES, { what: "manifest", ...sig(options) });
      verifyBytes(bytes, d);
      await this.putManifest(d.digest, d.mediaType, bytes, options);
      return;
    }
    const op = "oci.push.blob";
    const start = await this.send("POST", `/v2/${this.repository}/blobs/uploads/`, {
      push: true,
      body: "",
      ...sig(options),
      op,
    });
    await start.body.dump().catch(() => {});
    if (start.status !== 202) throw await responseError(start, op, `start upload of ${d.digest}`);
    let location = header(start.headers, "location");
    if (!location) throw new ImageModeError("REMOTE", "upload started without a Location", { op });
    const verified = verify(toByteStream(content), d, {
      ...sig(options),
      onBytes: (n) =>
        options.onProgress?.({ type: "bytes", task: op, id: d.digest, done: n, total: d.size }),
    });
    const chunkSize = this.options.chunkSize;
    if (chunkSize && d.size > chunkSize) {
      let offset = 0;
      for await (const chunk of rechunk(verified, chunkSize)) {
        const res = await this.send("PATCH", location, {
          push: true,
          headers: {
            "content-type": "application/octet-stream",
            "content-range": `${offset}-${offset + chunk.byteLength - 1}`,
            "content-length": String(chunk.byteLength),
          },
          body: chunk,
          ...sig(options),
          op,
        });
        await res.body.dump().catch(() => {});
        if (res.status !== 202) throw await responseError(res, op, `upload chunk of ${d.digest}`);
        offset += chunk.byteLength;
        location = header(res.headers, "location") ?? location;
      }
      const res = await this.send("PUT", withDigest(location, d.digest), {
        push: true,
        headers: { "content-length": "0" },
        body: "",
        ...sig(options),
        op,
      });
      if (res.status !== 201) throw await responseError(res, op, `finish upload of ${d.digest}`);
      await res.body.dump().catch(() => {});
      return;
    }
    const res = await this.send("PUT", withDigest(location, d.digest), {
      push: true,
      headers: { "content-type": "application/octet-stream", "content-length": String(d.size) },
      body: d.size === 0 ? new Uint8Array(0) : verified,
      ...sig(options),
      op,
    });
    if (d.size === 0) for await (const _ of verified) void _;
    if (res.status !== 201) throw await responseError(res, op, `upload ${d.digest}`);
    await res.body.dump().catch(() => {});
  }

  private async putManifest(
    reference: string,
    mediaType: string,
    bytes: Uint8Array,
    options: OpOptions,
  ): Promise<void> {
    const op = "oci.push.manifest";
    const res = await this.send("PUT", this.manifestPath(reference), {
      push: true,
      headers: { "content-type": mediaType },
      body: bytes,
      ...sig(options),
      op,
    });
    if (res.status !== 201 && res.status !== 200)
      throw await responseError(res, op, `put manifest ${reference}`);
    await res.body.dump().catch(() => {});
  }

  /** Points `reference` (a tag) at the manifest `d`, which must already be in the repository. */
  async tag(d: Descriptor, reference: string, options: OpOptions = {}): Promise<void> {
    if (reference === d.digest) return;
    const { bytes } = await this.fetchManifest(d.digest, options);
    await this.putManifest(reference, d.mediaType, bytes, options);
  }

  /** The repository's tags (`/v2/<name>/tags/list`, following `Link` pagination). */
  async listTags(options: OpOptions = {}): Promise<string[]> {
    const out: string[] = [];
    let path: string | undefined = `/v2/${this.repository}/tags/list`;
    for (let pages = 0; path && pages < 1000; pages++) {
      const res = await this.send("GET", path, { ...sig(options), op: "oci.registry.tags" });
      if (res.status >= 400)
        throw await responseError(res, "oci.registry.tags", `tags of ${this.repository}`);
      const doc = JSON.parse(
        Buffer.from(await readAll(res.body, 16 << 20, { what: "tag list" })).toString("utf8"),
      ) as { tags?: string[] | null };
      out.push(...(doc.tags ?? []));
      const link = header(res.headers, "link");
      path = link ? /<([^>]+)>/.exec(link)?.[1] : undefined;
    }
    return out;
  }
}

function sig(o: OpOptions): { signal?: AbortSignal } {
  return o.signal ? { signal: o.signal } : {};
}

function withDigest(location: string, digest: string): string {
  return `${location}${location.includes("?") ? "&" : "?"}digest=${encodeURIComponent(digest)}`;
}

function declaredMediaType(bytes: Uint8Array): string | undefined {
  try {
    const doc = JSON.parse(Buffer.from(bytes).toString("utf8")) as { mediaType?: unknown };
    return typeof doc.mediaType === "string" ? doc.mediaType : undefined;
  } catch {
    return undefined;
  }
}

async function* rechunk(stream: ByteStream, size: number): AsyncGenerator<Uint8Array> {
  let buf: Uint8Array[] = [];
  let n = 0;
  for await (const c of stream) {
    let rest = c;
    while (rest.byteLength > 0) {
      const take = Math.min(size - n, rest.byteLength);
      buf.push(rest.subarray(0, take));
      n += take;
      rest = rest.subarray(take);
      if (n === size) {
        yield Buffer.concat(buf);
        buf = [];
        n = 0;
      }
    }
  }
  if (n > 0) yield Buffer.concat(buf);
}
