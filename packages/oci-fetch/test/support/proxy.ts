import { once } from "node:events";
import http from "node:http";

/** What the proxy does to a matching request. */
export type FaultAction =
  | { kind: "cut"; atFraction?: number }
  | { kind: "corrupt" }
  | { kind: "ignore-range" }
  | { kind: "status"; status: number; headers?: Record<string, string>; body?: string }
  | { kind: "body"; status: number; headers: Record<string, string>; size: number };

/** A fault rule: applies to the first `times` requests that match. */
export interface Fault {
  match: (method: string, path: string) => boolean;
  times: number;
  action: FaultAction;
}

/** A scripted proxy in front of a real registry, for faults a real registry will not produce. */
export interface FaultProxy {
  host: string;
  url: string;
  faults: Fault[];
  /** Every request line seen, and the blob bytes sent to clients. */
  log: { method: string; path: string; range?: string; status?: number }[];
  blobBytes: number;
  tokenRequests: URLSearchParams[];
  /** Forgets every token handed out (as an expiry on the server side would). */
  revokeTokens(): void;
  close(): Promise<void>;
}

/**
 * Starts the proxy on 127.0.0.1. With `bearer`, it plays a registry with token auth: `/v2/…`
 * needs `Authorization: Bearer <token from /token>`, and `/token` wants Basic credentials.
 */
export async function startProxy(
  upstream: string,
  opts: { bearer?: { username: string; password: string } } = {},
): Promise<FaultProxy> {
  const up = new URL(upstream);
  const tokens = new Set<string>();
  const proxy: FaultProxy = {
    host: "",
    url: "",
    faults: [],
    log: [],
    blobBytes: 0,
    tokenRequests: [],
    revokeTokens: () => tokens.clear(),
    close: async () => {},
  };
  const server = http.createServer((req, res) => {
    const method = req.method ?? "GET";
    const path = req.url ?? "/";
    const entry: FaultProxy["log"][number] = {
      method,
      path,
      ...(req.headers.range ? { range: req.headers.range } : {}),
    };
    proxy.log.push(entry);
    if (opts.bearer) {
      if (path.startsWith("/token")) {
        const q = new URL(path, "http://x").searchParams;
        proxy.tokenRequests.push(q);
        const want = `Basic ${Buffer.from(`${opts.bearer.username}:${opts.bearer.password}`).toString("base64")}`;
        if (req.headers.authorization !== want) {
          res
            .writeHead(401, { "content-type": "application/json" })
            .end('{"details":"bad credentials"}');
          return;
        }
        const t = `tok-${proxy.tokenRequests.length}`;
        tokens.add(t);
        res
          .writeHead(200, { "content-type": "application/json" })
          .end(JSON.stringify({ token: t, expires_in: 300 }));
        return;
      }
      const auth = req.headers.authorization ?? "";
      if (!auth.startsWith("Bearer ") || !tokens.has(auth.slice(7))) {
        const name = /^\/v2\/(.+?)\/(manifests|blobs|tags)\//.exec(path)?.[1];
        const scope = name ? `,scope="repository:${name}:pull"` : "";
        res.writeHead(401, {
          "www-authenticate": `Bearer realm="${proxy.url}/token",service="test-registry"${scope}`,
          "content-type": "application/json",
        });
        res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
        return;
      }
    }
    const fault = proxy.faults.find((f) => f.times > 0 && f.match(method, path));
    if (fault) fault.times--;
    const action = fault?.action;
    if (action?.kind === "status") {
      entry.status = action.status;
      res
        .writeHead(action.status, { "content-type": "application/json", ...action.headers })
        .end(action.body ?? "");
      return;
    }
    if (action?.kind === "body") {
      entry.status = action.status;
      res.writeHead(action.status, { ...action.headers, "content-length": String(action.size) });
      if (method === "HEAD") return res.end();
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      let left = action.size;
      const pump = () => {
        while (left > 0) {
          const n = Math.min(left, chunk.length);
          left -= n;
          if (!res.write(chunk.subarray(0, n))) return res.once("drain", pump);
        }
        res.end();
      };
      pump();
      return;
    }
    const headers = { ...req.headers };
    if (opts.bearer) delete headers.authorization;
    if (action?.kind === "ignore-range") delete headers.range;
    const upReq = http.request(
      { host: up.hostname, port: up.port, method, path, headers },
      (upRes) => {
        entry.status = upRes.statusCode;
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        const isBlob = method === "GET" && /\/blobs\/sha256:/.test(path);
        const total = Number(upRes.headers["content-length"] ?? 0);
        let sent = 0;
        let corrupted = false;
        upRes.on("data", (c: Buffer) => {
          let chunk = c;
          if (action?.kind === "corrupt" && !corrupted && sent + chunk.length > total / 2) {
            chunk = Buffer.from(chunk);
            const i = Math.max(0, Math.floor(total / 2) - sent);
            chunk[i] = (chunk[i] ?? 0) ^ 0xff;
            corrupted = true;
          }
          if (action?.kind === "cut" && sent + chunk.length >= total * (action.atFraction ?? 0.5)) {
            const keep = Math.max(0, Math.floor(total * (action.atFraction ?? 0.5)) - sent);
            res.write(chunk.subarray(0, keep), () => res.socket?.destroy());
            sent += keep;
            if (isBlob) proxy.blobBytes += keep;
            upRes.destroy();
            return;
          }
          sent += chunk.length;
          if (isBlob) proxy.blobBytes += chunk.length;
          res.write(chunk);
        });
        upRes.on("end", () => res.end());
      },
    );
    upReq.on("error", () => res.destroy());
    req.pipe(upReq);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const addr = server.address();
  if (addr === null || typeof addr === "string") throw new Error("no address");
  proxy.host = `127.0.0.1:${addr.port}`;
  proxy.url = `http://${proxy.host}`;
  proxy.close = async () => {
    server.closeAllConnections();
    server.close();
    await once(server, "close").catch(() => {});
  };
  return proxy;
}
