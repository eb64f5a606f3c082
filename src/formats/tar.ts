/**
 * A minimal tar writer for one regular file: a POSIX ustar header, a pax extended header when the size is
 * 8 GiB or more or the name is longer than 100 bytes, the data, padding and the end-of-archive blocks.
 * Hand-written because it is 100 lines and the npm tar libraries either buffer entries or pull in a file-system
 * walker; GNU tar, bsdtar and Python's tarfile all read what this writes (tests/tar_test.ts checks with GNU tar).
 */

const BLOCK = 512;
const enc = new TextEncoder();

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, "0") + "\0";
}

function header(name: string, size: number, mtime: number, type: string, mode = 0o640): Uint8Array {
  const h = new Uint8Array(BLOCK);
  const put = (s: string | Uint8Array, off: number, len: number) => {
    const b = typeof s === "string" ? enc.encode(s) : s;
    h.set(b.subarray(0, len), off);
  };
  put(name, 0, 100);
  put(octal(mode, 8), 100, 8);
  put(octal(0, 8), 108, 8); // uid
  put(octal(0, 8), 116, 8); // gid
  put(octal(size < 0o77777777777 ? size : 0, 12), 124, 12); // larger sizes travel in the pax header
  put(octal(Math.floor(mtime), 12), 136, 12);
  put("        ", 148, 8); // checksum placeholder
  put(type, 156, 1);
  put("ustar\0", 257, 6);
  put("00", 263, 2);
  let sum = 0;
  for (const b of h) sum += b;
  put(sum.toString(8).padStart(6, "0") + "\0 ", 148, 8);
  return h;
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = body.length + 1;
  while (String(len).length + enc.encode(body).length !== len) len = String(len).length + enc.encode(body).length;
  return `${len}${body}`;
}

/** Zero bytes that pad `size` up to a whole block. */
export function padding(size: number): Uint8Array {
  return new Uint8Array((BLOCK - (size % BLOCK)) % BLOCK);
}

/**
 * The header blocks for a file `name` of `size` bytes (pax header first when needed).
 * @example const head = tarHeader("dump.sql", 1234, Date.now() / 1000);
 */
export function tarHeader(name: string, size: number, mtimeSeconds: number): Uint8Array {
  const nameBytes = enc.encode(name);
  const records: string[] = [];
  if (size >= 0o77777777777) records.push(paxRecord("size", String(size)));
  if (nameBytes.length > 100) records.push(paxRecord("path", name));
  const main = header(nameBytes.length > 100 ? name.slice(0, 90) : name, size, mtimeSeconds, "0");
  if (!records.length) return main;
  const pax = enc.encode(records.join(""));
  const out = new Uint8Array(BLOCK + pax.length + padding(pax.length).length + BLOCK);
  out.set(header(`PaxHeaders/${name.slice(0, 80)}`, pax.length, mtimeSeconds, "x"), 0);
  out.set(pax, BLOCK);
  out.set(main, out.length - BLOCK);
  return out;
}

/** The two zero blocks that end an archive, padded to a 10 KiB record like GNU tar. */
export function tarEnd(bytesSoFar: number): Uint8Array {
  const total = bytesSoFar + 2 * BLOCK;
  const rec = 20 * BLOCK;
  return new Uint8Array(2 * BLOCK + ((rec - (total % rec)) % rec));
}
