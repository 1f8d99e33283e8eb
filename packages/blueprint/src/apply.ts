/**
 * Applying a plan: to a directory tree on disk, or as file-tree edits an image build merges
 * into the image (where ownership is the image's, so no root is needed).
 */
import { randomBytes } from "node:crypto";
import type { Stats } from "node:fs";
import * as fsp from "node:fs/promises";
import { dirname, join } from "node:path";
import {
  bytesStream,
  ImageModeError,
  normalizeTreePath,
  type OpOptions,
  type TreeEntry,
  throwIfAborted,
  toImageModeError,
} from "@imagemode/core";
import type { CustomizationPlan, PlanEdit } from "./plan.js";

/** Options of {@link applyPlan}. */
export interface ApplyOptions extends OpOptions {
  /**
   * Set owners with `lchown`. Default: only when running as root. When false, the owners the
   * image needs are returned in {@link ApplyResult.ownership} instead.
   */
  chown?: boolean;
}

/** What {@link applyPlan} did. */
export interface ApplyResult {
  /** Paths written or created, relative to the root. */
  written: string[];
  /** Paths skipped (a `createOnly` directory that already existed). */
  skipped: string[];
  /** Whether owners were set on disk. */
  chowned: boolean;
  /** The owner each written path must have in the image (what `lchown` set, or would set). */
  ownership: Array<{ path: string; uid: number; gid: number }>;
}

async function lstatOrUndefined(p: string): Promise<Stats | undefined> {
  try {
    return await fsp.lstat(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

/** Checks that every parent of `rel` inside `root` is a real directory (never a symlink). */
async function checkParents(root: string, rel: string): Promise<void> {
  const parts = rel.split("/");
  let cur = root;
  for (let i = 0; i < parts.length - 1; i++) {
    cur = join(cur, parts[i] as string);
    const st = await lstatOrUndefined(cur);
    if (!st) {
      throw new ImageModeError(
        "NOT_FOUND",
        `parent directory /${parts.slice(0, i + 1).join("/")} of /${rel} does not exist in the image`,
        {
          op: "blueprint.apply",
          data: { path: rel },
        },
      );
    }
    if (st.isSymbolicLink()) {
      throw new ImageModeError(
        "INVALID_STATE",
        `refusing to write /${rel} through the symlink /${parts.slice(0, i + 1).join("/")}`,
        {
          op: "blueprint.apply",
          data: { path: rel },
        },
      );
    }
    if (!st.isDirectory()) {
      throw new ImageModeError(
        "CONFLICT",
        `/${parts.slice(0, i + 1).join("/")} is not a directory`,
        { op: "blueprint.apply", data: { path: rel } },
      );
    }
  }
}

/**
 * Applies a plan to the directory tree at `rootDir` (an unpacked image root). Files are written
 * to a temporary file, fsynced and renamed into place; nothing is written outside `rootDir`
 * and no symlink is followed.
 */
export async function applyPlan(
  plan: CustomizationPlan,
  rootDir: string,
  options: ApplyOptions = {},
): Promise<ApplyResult> {
  const op = "blueprint.apply";
  const chown = options.chown ?? process.getuid?.() === 0;
  const rootStat = await lstatOrUndefined(rootDir).catch((e) => {
    throw toImageModeError(e, op, { path: rootDir });
  });
  if (!rootStat?.isDirectory()) {
    throw new ImageModeError("NOT_FOUND", `${rootDir} is not a directory`, {
      op,
      data: { path: rootDir },
    });
  }
  const result: ApplyResult = { written: [], skipped: [], chowned: chown, ownership: [] };
  options.onProgress?.({
    type: "start",
    task: op,
    total: plan.edits.length,
    description: `applying ${plan.edits.length} edits`,
  });
  let step = 0;
  for (const edit of plan.edits) {
    throwIfAborted(options.signal, op);
    const rel = normalizeTreePath(edit.path);
    const abs = join(rootDir, rel);
    try {
      await checkParents(rootDir, rel);
      const st = await lstatOrUndefined(abs);
      if (edit.type === "dir") {
        if (st && !st.isDirectory()) {
          throw new ImageModeError("CONFLICT", `/${rel} exists and is not a directory`, {
            op,
            data: { path: rel },
          });
        }
        if (st && edit.createOnly) {
          result.skipped.push(rel);
        } else {
          if (!st) await fsp.mkdir(abs, { mode: edit.mode });
          await fsp.chmod(abs, edit.mode);
          if (chown) await fsp.lchown(abs, edit.uid, edit.gid);
          result.written.push(rel);
          result.ownership.push({ path: rel, uid: edit.uid, gid: edit.gid });
        }
      } else {
        await writeFileAtomic(abs, edit, st, chown);
        const uid = edit.keepMetadata && st?.isFile() ? st.uid : edit.uid;
        const gid = edit.keepMetadata && st?.isFile() ? st.gid : edit.gid;
        result.written.push(rel);
        result.ownership.push({ path: rel, uid, gid });
      }
    } catch (e) {
      throw toImageModeError(e, op, { path: rel });
    }
    options.onProgress?.({
      type: "step",
      task: op,
      step: ++step,
      steps: plan.edits.length,
      description: `/${rel}`,
    });
  }
  options.onProgress?.({ type: "done", task: op });
  return result;
}

async function writeFileAtomic(
  abs: string,
  edit: Extract<PlanEdit, { type: "file" }>,
  st: Stats | undefined,
  chown: boolean,
): Promise<void> {
  if (st?.isDirectory())
    throw new ImageModeError("CONFLICT", `${edit.path} exists and is a directory`, {
      op: "blueprint.apply",
      data: { path: edit.path },
    });
  const keep = edit.keepMetadata && st?.isFile() ? st : undefined;
  const mode = keep ? keep.mode & 0o7777 : edit.mode;
  const uid = keep ? keep.uid : edit.uid;
  const gid = keep ? keep.gid : edit.gid;
  const tmp = `${abs}.imagemode-${randomBytes(6).toString("hex")}`;
  const fh = await fsp.open(tmp, "wx", 0o600);
  try {
    await fh.writeFile(edit.content);
    await fh.chmod(mode);
    if (chown) await fh.chown(uid, gid);
    await fh.sync();
  } catch (e) {
    await fh.close().catch(() => {});
    await fsp.rm(tmp, { force: true });
    throw e;
  }
  await fh.close();
  try {
    await fsp.rename(tmp, abs);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
  // Make the rename itself durable.
  const dirHandle = await fsp.open(dirname(abs), "r");
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}

/** A file-tree edit: a {@link TreeEntry} plus how to merge it into an existing tree. */
export interface TreeEdit extends TreeEntry {
  /** Create only when the image has no such path; never change an existing one. */
  createOnly?: boolean;
  /** When the image already has this file, keep its mode and owner (the account databases). */
  keepMetadata?: boolean;
}

/**
 * The plan as file-tree edits, parents before children, owners as the image must have them.
 * An image build merges these into the image's tree; no root is needed, since the owners are
 * data here, not the builder's.
 */
export async function* planToTreeEdits(plan: CustomizationPlan): AsyncIterable<TreeEdit> {
  for (const edit of plan.edits) {
    const path = normalizeTreePath(edit.path);
    if (edit.type === "dir") {
      yield {
        path,
        type: "dir",
        mode: edit.mode,
        uid: edit.uid,
        gid: edit.gid,
        ...(edit.createOnly ? { createOnly: true } : {}),
      };
    } else {
      const bytes = new TextEncoder().encode(edit.content);
      yield {
        path,
        type: "file",
        mode: edit.mode,
        uid: edit.uid,
        gid: edit.gid,
        size: bytes.length,
        content: async () => bytesStream(bytes),
        ...(edit.keepMetadata ? { keepMetadata: true } : {}),
      };
    }
  }
}
