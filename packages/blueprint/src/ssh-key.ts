/**
 * SSH public keys as they appear in `authorized_keys`: `[options] type base64 [comment]`.
 */

/** Key types OpenSSH accepts in `authorized_keys`. */
export const SSH_KEY_TYPES: readonly string[] = [
  "ssh-rsa",
  "ssh-dss",
  "ssh-ed25519",
  "ssh-ed448",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "sk-ecdsa-sha2-nistp256@openssh.com",
  "sk-ssh-ed25519@openssh.com",
  "ssh-rsa-cert-v01@openssh.com",
  "ssh-ed25519-cert-v01@openssh.com",
  "ecdsa-sha2-nistp256-cert-v01@openssh.com",
  "ecdsa-sha2-nistp384-cert-v01@openssh.com",
  "ecdsa-sha2-nistp521-cert-v01@openssh.com",
  "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
  "sk-ssh-ed25519-cert-v01@openssh.com",
];

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * Why one line is not an SSH public key, or `undefined` when it is one. Blank lines and
 * `#` comments are fine. When the base64 blob is long enough to carry its own key type, that
 * type must match the one written in front of it.
 */
export function publicKeyProblem(line: string): string | undefined {
  const trimmed = line.trim();
  if (trimmed === "" || trimmed.startsWith("#")) return undefined;
  if (/PRIVATE KEY/.test(trimmed))
    return "this is a private key; give the public key (the .pub file)";
  const fields = trimmed.split(/\s+/);
  // Skip a leading options field (anything before the first known key type).
  const at = fields.findIndex((f) => SSH_KEY_TYPES.includes(f));
  if (at < 0) return `no known key type (${SSH_KEY_TYPES.slice(0, 3).join(", ")}, …) found`;
  const type = fields[at] as string;
  const blob = fields[at + 1];
  if (blob === undefined) return `the ${type} key has no key data`;
  if (!BASE64.test(blob)) return `the ${type} key data is not base64`;
  const bytes = Buffer.from(blob, "base64");
  if (bytes.length >= 4) {
    const n = bytes.readUInt32BE(0);
    if (n > 0 && n <= 64 && bytes.length >= 4 + n) {
      const embedded = bytes.subarray(4, 4 + n).toString("latin1");
      if (embedded !== type)
        return `the key data is a ${JSON.stringify(embedded)} key, not ${type}`;
    }
  }
  return undefined;
}

/** The non-empty key lines of a `key` value. */
export function keyLines(key: string): string[] {
  return key
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "");
}
