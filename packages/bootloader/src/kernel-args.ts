/**
 * Kernel command lines: parse (with the kernel's double-quote rules), edit, print back.
 */
import { invalidArgument, splitKernelCommandLine } from "@imagemode/core";

/** One argument as written (`raw`, quotes included) with its key and value (quotes removed). */
export interface KernelArg {
  raw: string;
  key: string;
  /** `undefined` for a flag without `=` (`quiet`); `""` for `key=`. */
  value: string | undefined;
}

/** Parses one token (quotes kept in `raw`, removed from key and value). */
function parseToken(raw: string): KernelArg {
  const unq = raw.replaceAll('"', "");
  // The kernel splits at the first '=' outside quotes; quotes only group, so removing them first
  // gives the same key/value split as long as keys have no '=' (they cannot).
  const eq = unq.indexOf("=");
  return eq < 0
    ? { raw, key: unq, value: undefined }
    : { raw, key: unq.slice(0, eq), value: unq.slice(eq + 1) };
}

/** Quotes a value for the command line when it contains whitespace (`key="a b"`). */
function formatArg(key: string, value: string | undefined): string {
  const q = (t: string): string => (/\s/.test(t) ? `"${t}"` : t);
  return value === undefined ? q(key) : `${key}=${q(value)}`;
}

/**
 * An ordered, editable kernel command line. Arguments keep their exact spelling, so
 * `KernelArgs.parse(s).toString()` equals `s` with whitespace runs collapsed to one space.
 *
 * @example
 * const k = KernelArgs.parse('root=UUID=1234 rw console=tty0 console=ttyS0,115200 quiet');
 * k.delete("quiet").replace("rw=").append('dyndbg="file foo.c +p"');
 * k.getAll("console"); // ["tty0", "ttyS0,115200"]
 */
export class KernelArgs {
  #args: KernelArg[];

  private constructor(args: KernelArg[]) {
    this.#args = args;
  }

  /** Parses a command line. Double quotes group whitespace (`"a b"`, `k="a b"`). */
  static parse(cmdline: string): KernelArgs {
    return new KernelArgs(splitKernelCommandLine(cmdline).map(parseToken));
  }

  /** Builds from a list of single arguments (each one token; quoting added where needed). */
  static from(args: Iterable<string>): KernelArgs {
    const k = new KernelArgs([]);
    for (const a of args) k.append(a);
    return k;
  }

  /** A copy. */
  clone(): KernelArgs {
    return new KernelArgs([...this.#args]);
  }

  /** Number of arguments. */
  get length(): number {
    return this.#args.length;
  }

  /** The parsed arguments, in order. */
  entries(): KernelArg[] {
    return [...this.#args];
  }

  /** The arguments as written, in order. */
  toArray(): string[] {
    return this.#args.map((a) => a.raw);
  }

  [Symbol.iterator](): Iterator<string> {
    return this.toArray()[Symbol.iterator]();
  }

  /** True if an argument with this key (or this exact `key=value`) is present. */
  has(arg: string): boolean {
    const t = KernelArgs.#one(arg);
    const exact = arg.includes("=");
    return this.#args.some((a) => a.key === t.key && (!exact || a.value === t.value));
  }

  /** The value of the first argument with `key` (`undefined` if absent or a bare flag). */
  get(key: string): string | undefined {
    return this.#args.find((a) => a.key === key)?.value;
  }

  /** Every value of `key`, in order (`null` for bare flags). */
  getAll(key: string): (string | null)[] {
    return this.#args.filter((a) => a.key === key).map((a) => a.value ?? null);
  }

  /** Appends one argument (also when an equal one exists). */
  append(arg: string): this {
    this.#args.push(KernelArgs.#one(arg));
    return this;
  }

  /** Appends one argument unless an identical one is present. */
  appendIfMissing(arg: string): this {
    const t = KernelArgs.#one(arg);
    if (!this.#args.some((a) => a.key === t.key && a.value === t.value)) this.#args.push(t);
    return this;
  }

  /**
   * Deletes arguments: `key=value` deletes exact matches only; a bare `key` deletes every argument
   * with that key (`console` removes all `console=…`, `quiet` removes `quiet`).
   */
  delete(arg: string): this {
    const t = KernelArgs.#one(arg);
    const exact = arg.includes("=");
    this.#args = this.#args.filter((a) => !(a.key === t.key && (!exact || a.value === t.value)));
    return this;
  }

  /**
   * Sets `key=value` in place: the first argument with the key is replaced, later ones with the key
   * removed; appended when the key is absent (ostree's `--karg=K=V`).
   */
  replace(arg: string): this {
    const t = KernelArgs.#one(arg);
    const i = this.#args.findIndex((a) => a.key === t.key);
    if (i < 0) {
      this.#args.push(t);
      return this;
    }
    this.#args = this.#args.filter((a, j) => j <= i || a.key !== t.key);
    this.#args[i] = t;
    return this;
  }

  /**
   * bootc's kargs.d upgrade rule: arguments in `oldImage` but not in `newImage` are deleted (exact
   * match), arguments in `newImage` but not in `oldImage` are appended; everything else (machine-local
   * arguments) is kept in place.
   */
  applyImageDiff(oldImage: Iterable<string>, newImage: Iterable<string>): this {
    const oldSet = new Set([...oldImage].map((a) => KernelArgs.#one(a).raw));
    const newList = [...newImage].map((a) => KernelArgs.#one(a).raw);
    const newSet = new Set(newList);
    const removed = new Set([...oldSet].filter((a) => !newSet.has(a)));
    const added = newList.filter((a) => !oldSet.has(a));
    this.#args = this.#args.filter((a) => !removed.has(a.raw));
    for (const a of added) this.append(a);
    return this;
  }

  /** The command line: arguments as written, separated by one space. */
  toString(): string {
    return this.toArray().join(" ");
  }

  static #one(arg: string): KernelArg {
    const toks = splitKernelCommandLine(arg);
    if (toks.length === 1 && toks[0] !== undefined) return parseToken(toks[0]);
    if (toks.length === 0) throw invalidArgument("empty kernel argument", { op: "kargs.edit" });
    // A single argument with whitespace: quote its value.
    const eq = arg.indexOf("=");
    if (eq > 0 && !/\s/.test(arg.slice(0, eq))) {
      const raw = formatArg(arg.slice(0, eq), arg.slice(eq + 1));
      return { raw, key: arg.slice(0, eq), value: arg.slice(eq + 1) };
    }
    throw invalidArgument(`not a single kernel argument: ${JSON.stringify(arg)}`, {
      op: "kargs.edit",
      data: { arg },
    });
  }
}
