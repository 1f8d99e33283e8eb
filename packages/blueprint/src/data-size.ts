import { invalidArgument } from "@imagemode/core";

/** Byte multiples of the units a size string may carry (case-sensitive, as bootc-image-builder reads them). */
export const DATA_SIZE_UNITS: Readonly<Record<string, number>> = {
  kB: 1000,
  KiB: 1024,
  MB: 1000 ** 2,
  MiB: 1024 ** 2,
  GB: 1000 ** 3,
  GiB: 1024 ** 3,
  TB: 1000 ** 4,
  TiB: 1024 ** 4,
};

const LEADING_NUMBER = /^(\d+(?:\.\d+)?)/;
const WITH_UNIT = /^(\d+(?:\.\d+)?)\s*([A-Za-z]+)$/;
const BARE = /^\d+(?:\.\d+)?$/;

/**
 * Converts a data size to bytes: a non-negative integer is taken as bytes; a string is a
 * decimal number, optional whitespace and an optional unit (`kB`, `KiB`, `MB`, `MiB`, `GB`,
 * `GiB`, `TB`, `TiB`; without a unit: bytes). Fractions are allowed and rounded to the nearest
 * byte (`"2.5GB"`, `"10 GiB"`, `"1.5"` → 2).
 *
 * @throws ImageModeError `INVALID_ARGUMENT` with bootc-image-builder's message:
 *   `unknown data size units in string: …` or `the size string is not a valid positive float number: …`.
 */
export function parseDataSize(value: string | number): number {
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw invalidArgument(`the size is not a non-negative integer number of bytes: ${value}`, {
        op: "blueprint.parseDataSize",
        data: { value },
      });
    }
    return value;
  }
  if (typeof value !== "string") {
    throw invalidArgument(`a size must be an integer or a string, got ${typeof value}`, {
      op: "blueprint.parseDataSize",
    });
  }
  const size = value.trim();
  const lead = LEADING_NUMBER.exec(size);
  if (!lead) {
    throw invalidArgument(`the size string is not a valid positive float number: ${size}`, {
      op: "blueprint.parseDataSize",
      data: { value },
    });
  }
  let multiple: number | undefined;
  let numberText = size;
  if (BARE.test(size)) {
    multiple = 1;
  } else {
    const m = WITH_UNIT.exec(size);
    if (m?.[1] !== undefined && m[2] !== undefined && Object.hasOwn(DATA_SIZE_UNITS, m[2])) {
      multiple = DATA_SIZE_UNITS[m[2]];
      numberText = m[1];
    }
  }
  if (multiple === undefined) {
    throw invalidArgument(`unknown data size units in string: ${size}`, {
      op: "blueprint.parseDataSize",
      data: { value },
    });
  }
  const bytes = Math.round(Number(numberText) * multiple);
  if (!Number.isSafeInteger(bytes)) {
    throw invalidArgument(`the size is too large: ${size}`, {
      op: "blueprint.parseDataSize",
      data: { value },
    });
  }
  return bytes;
}
