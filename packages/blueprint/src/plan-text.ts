/**
 * A human-readable rendering of a plan (for CLIs and reviews).
 */
import { formatBytes } from "@imagemode/core";
import type { CustomizationPlan } from "./plan.js";

const octal = (m: number) => m.toString(8).padStart(4, "0");

/** Renders a plan as text, one change a line. Password hashes are not shown. */
export function formatPlan(plan: CustomizationPlan): string {
  const out: string[] = [];
  for (const g of plan.groups) {
    if (g.created) out.push(`group ${g.name}: create with GID ${g.gid} (${g.origin})`);
    if (g.addedMembers.length > 0) out.push(`group ${g.name}: add ${g.addedMembers.join(", ")}`);
  }
  for (const u of plan.users) {
    const verb = u.created ? `create with UID ${u.uid} GID ${u.gid}` : `change (UID ${u.uid})`;
    out.push(
      `user ${u.name}: ${verb}, home ${u.home}, shell ${u.shell}, password ${u.password}, ${u.keys} SSH key(s)`,
    );
  }
  for (const e of plan.edits) {
    const what =
      e.type === "dir"
        ? e.createOnly
          ? "mkdir (if missing)"
          : "mkdir"
        : e.keepMetadata
          ? "rewrite"
          : "write";
    out.push(
      `${what} /${e.path} ${octal(e.mode)} ${e.uid}:${e.gid}${e.type === "file" ? ` (${e.content.length} bytes)` : ""}`,
    );
  }
  if (plan.kernelArgs.length > 0) out.push(`kernel arguments: ${plan.kernelArgs.join(" ")}`);
  for (const f of plan.storage.filesystems)
    out.push(`filesystem ${f.mountpoint}: at least ${formatBytes(f.minSize)}`);
  if (plan.storage.disk)
    out.push(
      `disk: ${plan.storage.disk.partitions?.length ?? 0} partition(s) (${plan.storage.disk.type ?? "gpt"})`,
    );
  for (const n of plan.notes) out.push(`note: ${n}`);
  return `${out.join("\n")}\n`;
}
