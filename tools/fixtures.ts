/**
 * Test and demo inputs: a throwaway CA and server certificate (openssl), mysqldump-like SQL, and zips.
 * Shared by tests/, the demo (tools/demo.ts) and the benchmark (bench/).
 */
import zlib from "node:zlib";
import { join } from "node:path";

/** Run a command, throwing with its stderr on failure. */
export async function sh(
  cmd: string,
  args: string[],
  opts: { cwd?: string; stdin?: string; env?: Record<string, string> } = {},
): Promise<string> {
  let p: Deno.ChildProcess;
  try {
    p = new Deno.Command(cmd, {
      args,
      cwd: opts.cwd,
      env: opts.env,
      stdin: opts.stdin !== undefined ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(`${cmd} is not installed (apt-get install ${cmd})`);
    }
    throw e;
  }
  if (opts.stdin !== undefined) {
    const w = p.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const r = await p.output();
  const td = new TextDecoder();
  if (!r.success) throw new Error(`${cmd} ${args.join(" ")} failed (${r.code}): ${td.decode(r.stderr)}`);
  return td.decode(r.stdout);
}

export interface TestCert {
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
}

/** A private CA and a server certificate for 127.0.0.1 / localhost, signed by it. */
export async function makeCert(dir: string, cn = "127.0.0.1"): Promise<TestCert> {
  await Deno.mkdir(dir, { recursive: true });
  const caKey = join(dir, "ca.key"),
    caFile = join(dir, "ca.pem"),
    keyFile = join(dir, "server.key"),
    csr = join(dir, "server.csr"),
    certFile = join(dir, "server.pem");
  const ext = join(dir, "ext.cnf");
  await Deno.writeTextFile(
    ext,
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
  );
  await sh("openssl", [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    caKey,
    "-out",
    caFile,
    "-days",
    "7",
    "-subj",
    "/CN=archivist test CA",
  ]);
  await sh("openssl", ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", keyFile, "-out", csr, "-subj", `/CN=${cn}`]);
  await sh("openssl", [
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    caFile,
    "-CAkey",
    caKey,
    "-CAcreateserial",
    "-out",
    certFile,
    "-days",
    "7",
    "-extfile",
    ext,
  ]);
  await Deno.chmod(keyFile, 0o600);
  return { dir, caFile, certFile, keyFile, cert: await Deno.readTextFile(certFile), key: await Deno.readTextFile(keyFile) };
}

/** A deterministic mysqldump-like SQL text of about `approxBytes`, ending with the mysqldump trailer unless told not to. */
export function sqlDump(approxBytes: number, opts: { trailer?: boolean; seed?: number } = {}): Uint8Array {
  const lines: string[] = [
    "-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)",
    "--",
    "-- Host: localhost    Database: shop",
    "-- ------------------------------------------------------",
    "CREATE TABLE `orders` (`id` int NOT NULL, `customer` int, `note` varchar(64), `amount` decimal(10,2), `created` datetime, PRIMARY KEY (`id`));",
  ];
  let size = lines.reduce((a, l) => a + l.length + 1, 0);
  let x = opts.seed ?? 42;
  const rnd = () => (x = (x * 1103515245 + 12345) & 0x7fffffff);
  const notes = ["'gift wrap'", "NULL", "'express'", "'call before delivery'", "'back order'"];
  for (let i = 1; size < approxBytes; i++) {
    const row = `INSERT INTO \`orders\` VALUES (${i},${rnd() % 99999},${notes[rnd() % notes.length]},${rnd() % 1000}.${
      String(rnd() % 100).padStart(2, "0")
    },'2026-11-${String(1 + (rnd() % 28)).padStart(2, "0")} ${String(rnd() % 24).padStart(2, "0")}:${
      String(rnd() % 60).padStart(2, "0")
    }:00');`;
    lines.push(row);
    size += row.length + 1;
  }
  if (opts.trailer !== false) lines.push("", "-- Dump completed on 2026-11-22  2:00:01");
  return new TextEncoder().encode(lines.join("\n") + "\n");
}

export interface ZipInput {
  name: string;
  data: Uint8Array;
  /** 0 stored, 8 deflate (default), or any number to fake an unsupported method. */
  method?: number;
}

/** A zip file in memory (stored or deflate entries, no Zip64): enough for tests and the demo. */
export function makeZip(entries: ZipInput[]): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const e of entries) {
    const method = e.method ?? 8;
    const body = method === 8 ? new Uint8Array(zlib.deflateRawSync(e.data)) : e.data;
    const crc = zlib.crc32(e.data) >>> 0;
    const name = enc.encode(e.name);
    const lh = new Uint8Array(30 + name.length);
    const lv = new DataView(lh.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, 20, true);
    lv.setUint16(6, 0x0800, true);
    lv.setUint16(8, method, true);
    lv.setUint16(10, 0, true);
    lv.setUint16(12, 0x5b76, true); // 2025-11-22
    lv.setUint32(14, crc, true);
    lv.setUint32(18, body.length, true);
    lv.setUint32(22, e.data.length, true);
    lv.setUint16(26, name.length, true);
    lh.set(name, 30);
    const ch = new Uint8Array(46 + name.length);
    const cv = new DataView(ch.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, 0x031e, true);
    cv.setUint16(6, 20, true);
    cv.setUint16(8, 0x0800, true);
    cv.setUint16(10, method, true);
    cv.setUint16(14, 0x5b76, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, body.length, true);
    cv.setUint32(24, e.data.length, true);
    cv.setUint16(28, name.length, true);
    cv.setUint32(42, offset, true);
    ch.set(name, 46);
    parts.push(lh, body);
    central.push(ch);
    offset += lh.length + body.length;
  }
  const cdSize = central.reduce((a, c) => a + c.length, 0);
  const eocd = new Uint8Array(22);
  const ev = new DataView(eocd.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, entries.length, true);
  ev.setUint16(10, entries.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, offset, true);
  const all = [...parts, ...central, eocd];
  const out = new Uint8Array(all.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of all) (out.set(p, o), o += p.length);
  return out;
}
