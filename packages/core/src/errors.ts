/**
 * The one error hierarchy of imagemode. Every error a library throws on purpose is an
 * {@link ImageModeError} with a stable {@link ErrorCode}; errno, HTTP and OCI error codes are
 * mapped to these codes once, at the boundary where they are met.
 */

/** Stable error codes. CLIs map them to exit statuses; callers branch on them. */
export type ErrorCode =
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "INVALID_ARGUMENT"
  | "PARSE"
  | "DIGEST_MISMATCH"
  | "SIZE_MISMATCH"
  | "UNSUPPORTED"
  | "UNAUTHORIZED"
  | "DENIED"
  | "REMOTE"
  | "CONFLICT"
  | "INVALID_STATE"
  | "ABORTED"
  | "HOST"
  | "INTERNAL";

/** Every error code, in a stable order. */
export const ERROR_CODES: readonly ErrorCode[] = [
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "INVALID_ARGUMENT",
  "PARSE",
  "DIGEST_MISMATCH",
  "SIZE_MISMATCH",
  "UNSUPPORTED",
  "UNAUTHORIZED",
  "DENIED",
  "REMOTE",
  "CONFLICT",
  "INVALID_STATE",
  "ABORTED",
  "HOST",
  "INTERNAL",
];

const BRAND = Symbol.for("@imagemode/core.ImageModeError");

/** Options accepted by every {@link ImageModeError} constructor. */
export interface ImageModeErrorOptions {
  /** The operation that failed, as a dotted name (`oci.fetch.blob`, `ostree.commit`). */
  op?: string;
  /** Structured details a caller may inspect (paths, digests, HTTP status, …). */
  data?: Record<string, unknown>;
  /** The lower-level error this one wraps. */
  cause?: unknown;
}

/**
 * The base error. Check for it with {@link isImageModeError}, never with `instanceof`:
 * two copies of `@imagemode/core` in one dependency tree would each have their own class.
 */
export class ImageModeError extends Error {
  /** The stable code. */
  readonly code: ErrorCode;
  /** The operation that failed, if known. */
  readonly op: string | undefined;
  /** Structured details. */
  readonly data: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: ImageModeErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ImageModeError";
    this.code = code;
    this.op = options.op;
    this.data = options.data ?? {};
    Object.defineProperty(this, BRAND, { value: true, enumerable: false });
  }

  /** A plain-data form for `--json` output and logs. */
  toJSON(): {
    name: string;
    code: ErrorCode;
    message: string;
    op?: string;
    data: Record<string, unknown>;
  } {
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      ...(this.op === undefined ? {} : { op: this.op }),
      data: this.data,
    };
  }
}

/**
 * True when `err` is an imagemode error (from any copy of this package), optionally with one of
 * the given codes.
 */
export function isImageModeError(err: unknown, ...codes: ErrorCode[]): err is ImageModeError {
  if (typeof err !== "object" || err === null) return false;
  if ((err as Record<symbol, unknown>)[BRAND] !== true) return false;
  return codes.length === 0 || codes.includes((err as ImageModeError).code);
}

/** Shorthand constructors, one per code family that callers throw often. */
export function notFound(message: string, options?: ImageModeErrorOptions): ImageModeError {
  return new ImageModeError("NOT_FOUND", message, options);
}
/** An argument (a reference, a path, an option) is malformed. */
export function invalidArgument(message: string, options?: ImageModeErrorOptions): ImageModeError {
  return new ImageModeError("INVALID_ARGUMENT", message, options);
}
/** Input bytes could not be parsed (a manifest, a config, an on-disk object). */
export function parseError(message: string, options?: ImageModeErrorOptions): ImageModeError {
  return new ImageModeError("PARSE", message, options);
}
/** The feature or input kind is not supported. */
export function unsupported(message: string, options?: ImageModeErrorOptions): ImageModeError {
  return new ImageModeError("UNSUPPORTED", message, options);
}
/** The state on disk does not allow the operation. */
export function invalidState(message: string, options?: ImageModeErrorOptions): ImageModeError {
  return new ImageModeError("INVALID_STATE", message, options);
}

/** The operation was cancelled through its `AbortSignal`. */
export function abortedError(signal?: AbortSignal, op?: string): ImageModeError {
  const reason = signal?.reason;
  const msg =
    reason instanceof Error ? reason.message : reason ? String(reason) : "operation aborted";
  return new ImageModeError("ABORTED", msg, { ...(op ? { op } : {}), cause: reason });
}

/** Throws an `ABORTED` error when the signal has fired. */
export function throwIfAborted(signal: AbortSignal | undefined, op?: string): void {
  if (signal?.aborted) throw abortedError(signal, op);
}

const ERRNO_CODES: Record<string, ErrorCode> = {
  ENOENT: "NOT_FOUND",
  ENOTDIR: "NOT_FOUND",
  EEXIST: "ALREADY_EXISTS",
  ENOTEMPTY: "CONFLICT",
  EACCES: "DENIED",
  EPERM: "DENIED",
  EROFS: "DENIED",
  EINVAL: "INVALID_ARGUMENT",
  ENAMETOOLONG: "INVALID_ARGUMENT",
  ELOOP: "INVALID_ARGUMENT",
  EISDIR: "INVALID_ARGUMENT",
  ENOTSUP: "UNSUPPORTED",
  EOPNOTSUPP: "UNSUPPORTED",
  EXDEV: "UNSUPPORTED",
  ENOSPC: "HOST",
  EDQUOT: "HOST",
  EMFILE: "HOST",
  ENFILE: "HOST",
  EIO: "HOST",
  ABORT_ERR: "ABORTED",
};

/** The imagemode code for a Node.js system error code (`ENOENT` → `NOT_FOUND`, …). */
export function codeForErrno(errno: string | undefined): ErrorCode {
  return (errno && ERRNO_CODES[errno]) || "HOST";
}

/**
 * Wraps any thrown value into an {@link ImageModeError}: imagemode errors pass through, Node.js
 * system errors are mapped by errno, aborts become `ABORTED`, anything else is `INTERNAL`.
 */
export function toImageModeError(
  err: unknown,
  op?: string,
  data?: Record<string, unknown>,
): ImageModeError {
  if (isImageModeError(err)) return err;
  const e = err as {
    code?: unknown;
    name?: unknown;
    message?: unknown;
    path?: unknown;
    syscall?: unknown;
  };
  const base = { ...(op ? { op } : {}), cause: err };
  if (e && (e.name === "AbortError" || e.code === "ABORT_ERR")) {
    return new ImageModeError("ABORTED", String(e.message ?? "operation aborted"), {
      ...base,
      data: { ...data },
    });
  }
  if (e && typeof e.code === "string" && /^E[A-Z0-9]+$/.test(e.code)) {
    return new ImageModeError(codeForErrno(e.code), String(e.message ?? e.code), {
      ...base,
      data: {
        errno: e.code,
        ...(typeof e.path === "string" ? { path: e.path } : {}),
        ...(typeof e.syscall === "string" ? { syscall: e.syscall } : {}),
        ...data,
      },
    });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new ImageModeError("INTERNAL", message, { ...base, data: { ...data } });
}

/** Suggested process exit status for a code, used by the CLIs. */
export function exitCodeFor(code: ErrorCode): number {
  switch (code) {
    case "INVALID_ARGUMENT":
    case "PARSE":
      return 2;
    case "NOT_FOUND":
      return 3;
    case "UNAUTHORIZED":
    case "DENIED":
      return 4;
    case "DIGEST_MISMATCH":
    case "SIZE_MISMATCH":
      return 5;
    case "REMOTE":
      return 6;
    case "UNSUPPORTED":
      return 7;
    case "ABORTED":
      return 130;
    default:
      return 1;
  }
}
