/**
 * Registry authentication: `WWW-Authenticate` challenges, Basic and Bearer tokens (cached per
 * scope), and credential lookup in the files and helpers the container tools use.
 */
import { ImageModeError, invalidArgument } from "@imagemode/core";

/** Credentials for one registry. */
export type Credentials =
  | { username: string; password: string }
  | { identityToken: string; username?: string };

/** One parsed authentication challenge. */
export interface Challenge {
  /** Lower-case scheme: `basic`, `bearer`. */
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parses a `WWW-Authenticate` header value into its challenges
 * (`Bearer realm="…",service="…",scope="…"`; several challenges may be listed).
 */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const s = header;
  const skipWs = () => {
    while (i < s.length && (s[i] === " " || s[i] === "\t")) i++;
  };
  const token = () => {
    const m = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/.exec(s.slice(i));
    if (!m) return "";
    i += m[0].length;
    return m[0];
  };
  let current: Challenge | undefined;
  while (i < s.length) {
    skipWs();
    if (s[i] === ",") {
      i++;
      continue;
    }
    const start = i;
    const name = token();
    if (!name) {
      i++;
      continue;
    }
    skipWs();
    if (s[i] === "=") {
      i++;
      skipWs();
      let value = "";
      if (s[i] === '"') {
        i++;
        while (i < s.length && s[i] !== '"') {
          if (s[i] === "\\" && i + 1 < s.length) i++;
          value += s[i];
          i++;
        }
        i++;
      } else {
        value = token();
      }
      if (current) current.params[name.toLowerCase()] = value;
      else out.push({ scheme: "", params: { [name.toLowerCase()]: value } });
    } else {
      // a new scheme (token68 forms like `Basic abc==` are not used in challenges)
      void start;
      current = { scheme: name.toLowerCase(), params: {} };
      out.push(current);
    }
  }
  return out.filter((c) => c.scheme !== "");
}

/** The `Authorization` header value for Basic credentials. */
export function basicAuthorization(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, "utf8").toString("base64")}`;
}

/** The scope string for a repository: `repository:NAME:pull[,push]`. */
export function repositoryScope(repository: string, actions: readonly ("pull" | "push")[]): string {
  return `repository:${repository}:${actions.join(",")}`;
}

/** Parses a `USER:PASS` string (skopeo's `--creds`). Throws `INVALID_ARGUMENT`. */
export function parseCredentialsFlag(value: string): Credentials {
  const i = value.indexOf(":");
  if (i <= 0) throw invalidArgument("credentials must be USERNAME:PASSWORD", { data: {} });
  return { username: value.slice(0, i), password: value.slice(i + 1) };
}

/** Reads a file as UTF-8 text, or returns `undefined` when it does not exist. */
export type ReadTextFile = (path: string) => Promise<string | undefined>;
/** Runs a credential helper: `program` with `args`, `stdin` fed in; resolves with stdout and exit status. */
export type RunHelper = (
  program: string,
  args: string[],
  stdin: string,
) => Promise<{ status: number; stdout: string; stderr: string }>;

/** Where credentials are looked up. Everything is injected; nothing is read implicitly. */
export interface CredentialSourceOptions {
  /** Explicit credentials for every registry (skopeo `--creds`). */
  credentials?: Credentials;
  /** An explicit auth file (skopeo `--authfile`); when given, only this file is read. */
  authFile?: string;
  /** The environment (`REGISTRY_AUTH_FILE`, `XDG_RUNTIME_DIR`, `XDG_CONFIG_HOME`, `DOCKER_CONFIG`). */
  env?: Record<string, string | undefined>;
  /** The user's home directory, for `~/.docker/config.json` and `~/.config/containers/auth.json`. */
  homeDir?: string;
  /** A root directory under which bootc's `/etc/ostree/auth.json`, `/run/ostree/auth.json` and `/usr/lib/ostree/auth.json` are read. Not read when absent. */
  ostreeRoot?: string;
  readFile: ReadTextFile;
  /** Runs `docker-credential-*` helpers; without it, helpers are ignored. */
  runHelper?: RunHelper;
}

/** The auth files consulted, in order, for the given options. */
export function authFilePaths(
  o: Omit<CredentialSourceOptions, "readFile" | "runHelper">,
): string[] {
  if (o.authFile) return [o.authFile];
  const env = o.env ?? {};
  const out: string[] = [];
  if (env.REGISTRY_AUTH_FILE) out.push(env.REGISTRY_AUTH_FILE);
  if (env.XDG_RUNTIME_DIR) out.push(`${env.XDG_RUNTIME_DIR}/containers/auth.json`);
  const configHome = env.XDG_CONFIG_HOME ?? (o.homeDir ? `${o.homeDir}/.config` : undefined);
  if (configHome) out.push(`${configHome}/containers/auth.json`);
  if (env.DOCKER_CONFIG) out.push(`${env.DOCKER_CONFIG}/config.json`);
  else if (o.homeDir) out.push(`${o.homeDir}/.docker/config.json`);
  if (o.ostreeRoot !== undefined) {
    const r = o.ostreeRoot.replace(/\/+$/, "");
    out.push(
      `${r}/run/ostree/auth.json`,
      `${r}/etc/ostree/auth.json`,
      `${r}/usr/lib/ostree/auth.json`,
    );
  }
  return out;
}

/** The keys an auth file entry may have for `registry/repository`, most specific first. */
export function authKeys(registry: string, repository?: string): string[] {
  const keys: string[] = [];
  if (repository) {
    const parts = repository.split("/");
    for (let n = parts.length; n > 0; n--) keys.push(`${registry}/${parts.slice(0, n).join("/")}`);
  }
  keys.push(
    registry,
    `https://${registry}`,
    `http://${registry}`,
    `https://${registry}/v1/`,
    `https://${registry}/v2/`,
  );
  if (registry === "docker.io")
    keys.push("https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io");
  return keys;
}

interface AuthFile {
  auths?: Record<
    string,
    { auth?: string; identitytoken?: string; username?: string; password?: string }
  >;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

function decodeAuthEntry(
  e: { auth?: string; identitytoken?: string; username?: string; password?: string },
  file: string,
): Credentials | undefined {
  if (e.identitytoken) return { identityToken: e.identitytoken };
  if (e.username !== undefined && e.password !== undefined)
    return { username: e.username, password: e.password };
  if (!e.auth) return undefined;
  const decoded = Buffer.from(e.auth, "base64").toString("utf8");
  const i = decoded.indexOf(":");
  if (i < 0)
    throw new ImageModeError("PARSE", `invalid "auth" entry in ${file}`, { data: { file } });
  return { username: decoded.slice(0, i), password: decoded.slice(i + 1) };
}

async function fromHelper(
  helper: string,
  registry: string,
  run: RunHelper | undefined,
): Promise<Credentials | undefined> {
  if (!run) return undefined;
  const r = await run(`docker-credential-${helper}`, ["get"], registry);
  if (r.status !== 0) {
    if (/not found/i.test(r.stdout + r.stderr)) return undefined;
    throw new ImageModeError(
      "UNAUTHORIZED",
      `credential helper docker-credential-${helper} failed: ${(r.stderr || r.stdout).trim()}`,
      { data: { helper, registry } },
    );
  }
  let doc: { Username?: string; Secret?: string };
  try {
    doc = JSON.parse(r.stdout);
  } catch {
    throw new ImageModeError(
      "PARSE",
      `credential helper docker-credential-${helper} printed invalid JSON`,
      { data: { helper } },
    );
  }
  if (!doc.Secret) return undefined;
  if (doc.Username === "<token>") return { identityToken: doc.Secret };
  return { username: doc.Username ?? "", password: doc.Secret };
}

/**
 * Looks up credentials for `registry` (and optionally a repository, for namespaced entries), the
 * way containers/image does: explicit credentials, then each auth file in order
 * ({@link authFilePaths}); in each file `credHelpers`, then `auths`, then `credsStore`.
 */
export async function lookupCredentials(
  registry: string,
  repository: string | undefined,
  o: CredentialSourceOptions,
): Promise<Credentials | undefined> {
  if (o.credentials) return o.credentials;
  const keys = authKeys(registry, repository);
  for (const file of authFilePaths(o)) {
    const text = await o.readFile(file);
    if (text === undefined) continue;
    let doc: AuthFile;
    try {
      doc = JSON.parse(text) as AuthFile;
    } catch (e) {
      throw new ImageModeError("PARSE", `invalid JSON in auth file ${file}`, {
        cause: e,
        data: { file },
      });
    }
    const helper = doc.credHelpers?.[registry];
    if (helper) {
      const c = await fromHelper(helper, registry, o.runHelper);
      if (c) return c;
    }
    for (const k of keys) {
      const e = doc.auths?.[k];
      if (e) {
        const c = decodeAuthEntry(e, file);
        if (c) return c;
      }
    }
    if (doc.credsStore) {
      const c = await fromHelper(doc.credsStore, registry, o.runHelper);
      if (c) return c;
    }
  }
  return undefined;
}

/** A cached token. */
interface CachedToken {
  token: string;
  expiresAt: number;
}

/** Fetches a Bearer token from a realm: the HTTP part, injected by the registry client. */
export type TokenRequester = (req: {
  realm: string;
  service?: string;
  scopes: string[];
  credentials?: Credentials;
}) => Promise<{ token: string; expiresIn?: number }>;

/**
 * The authentication state of one registry: which scheme it asked for and the Bearer tokens
 * obtained so far, one per scope.
 */
export class AuthSession {
  private scheme: "none" | "basic" | "bearer" = "none";
  private bearer: Record<string, string> = {};
  private readonly tokens = new Map<string, CachedToken>();
  private readonly pending = new Map<string, Promise<CachedToken>>();

  constructor(
    private readonly credentials: () => Promise<Credentials | undefined>,
    private readonly requestToken: TokenRequester,
    private readonly now: () => number = Date.now,
  ) {}

  /** The `Authorization` header to send for `scope`, if any is known yet. */
  async authorization(scope: string): Promise<string | undefined> {
    if (this.scheme === "basic") {
      const c = await this.credentials();
      if (c && "password" in c) return basicAuthorization(c.username, c.password);
      return undefined;
    }
    if (this.scheme === "bearer") {
      const t = this.tokens.get(scope);
      if (t && t.expiresAt > this.now()) return `Bearer ${t.token}`;
      const fresh = await this.fetchToken(scope);
      return `Bearer ${fresh.token}`;
    }
    return undefined;
  }

  /**
   * Handles a 401: records the challenge and drops the cached token for the scope, so the next
   * {@link authorization} call answers it. Returns false when there is nothing to try (Basic
   * without credentials, or no usable challenge). Callers retry a request once.
   */
  async challenge(header: string | undefined, scope: string): Promise<boolean> {
    const challenges = parseChallenges(header ?? "");
    const bearer = challenges.find((c) => c.scheme === "bearer");
    const basic = challenges.find((c) => c.scheme === "basic");
    if (bearer?.params.realm) {
      this.scheme = "bearer";
      this.bearer = bearer.params;
      this.tokens.delete(scope);
      return true;
    }
    if (basic) {
      this.scheme = "basic";
      const c = await this.credentials();
      return c !== undefined && "password" in c;
    }
    return false;
  }

  private fetchToken(scope: string): Promise<CachedToken> {
    const p = this.pending.get(scope);
    if (p) return p;
    const run = (async () => {
      const credentials = await this.credentials();
      const scopes = [scope];
      const challenged = this.bearer.scope;
      if (challenged && challenged !== scope) scopes.push(...challenged.split(" "));
      const realm = this.bearer.realm as string;
      const r = await this.requestToken({
        realm,
        ...(this.bearer.service ? { service: this.bearer.service } : {}),
        scopes,
        ...(credentials ? { credentials } : {}),
      });
      // refresh a little early; registries default to 60 s
      const ttl = Math.max(10, r.expiresIn ?? 60) * 1000;
      const t = { token: r.token, expiresAt: this.now() + ttl - 5000 };
      this.tokens.set(scope, t);
      return t;
    })();
    this.pending.set(scope, run);
    return run.finally(() => this.pending.delete(scope));
  }
}
