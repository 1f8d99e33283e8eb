/**
 * Password hashes as bootc-image-builder writes them: plain text becomes SHA-512 crypt with a
 * 16-character salt; `$6$`, `$5$` and `$2b$` hashes are kept as given.
 */
import { randomBytes } from "node:crypto";
import { encrypt } from "unixcrypt";

const SALT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const HASH_PREFIXES = ["$6$", "$5$", "$2b$"];

/** A 16-character crypt salt from `random` (64 symbols, so each byte maps without bias). */
export function makeSalt(random: (size: number) => Uint8Array = randomBytes): string {
  const bytes = random(16);
  let salt = "";
  for (let i = 0; i < 16; i++) salt += SALT_ALPHABET[(bytes[i] ?? 0) & 63];
  return salt;
}

/** Hashes a password as `openssl passwd -6 -salt <salt>` does (SHA-512 crypt, 5000 rounds). */
export function hashPassword(password: string, salt: string): string {
  return encrypt(password, `$6$${salt}`);
}

/** True when the password is already a crypt hash bootc-image-builder keeps as is. */
export function isPasswordHash(password: string): boolean {
  return HASH_PREFIXES.some((p) => password.startsWith(p));
}
