/**
 * A destination in memory, for unit tests of the code above a Transport (the store step's checks), and a lying one
 * that breaks exactly one promise of the interface: each of store's checks must catch its lie. The conformance suite
 * (tests/transports/conformance.ts) still runs every real protocol against real servers.
 */
import type { RemoteEntry, Transport } from "../../src/transports/transport.ts";
import { ArchivistError } from "../../src/errors.ts";

export class MemoryTransport implements Transport {
  readonly files = new Map<string, Uint8Array>();
  constructor(readonly location = "memory://dest") {}
  open(): Promise<void> {
    return Promise.resolve();
  }
  async put(localPath: string, name: string): Promise<void> {
    this.files.set(name, await Deno.readFile(localPath));
  }
  rename(from: string, to: string): Promise<void> {
    const f = this.files.get(from);
    if (!f) return Promise.reject(new ArchivistError("store", `rename: no ${from}`, "", { code: "missing_file" }));
    if (this.files.has(to)) return Promise.reject(new ArchivistError("store", `rename: ${to} exists`, "", { code: "rename" }));
    this.files.delete(from);
    this.files.set(to, f);
    return Promise.resolve();
  }
  list(): Promise<RemoteEntry[]> {
    return Promise.resolve([...this.files].map(([name, b]) => ({ name, size: b.length })));
  }
  remove(name: string): Promise<void> {
    if (!this.files.delete(name)) return Promise.reject(new ArchivistError("store", `no ${name}`, "", { code: "not_found" }));
    return Promise.resolve();
  }
  async download(name: string, localPath: string): Promise<void> {
    const f = this.files.get(name);
    if (!f) throw new ArchivistError("store", `no ${name}`, "", { code: "missing_file" });
    await Deno.writeFile(localPath, f);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The one promise a {@link LyingTransport} breaks. */
export type Lie =
  | "truncates the upload" // put keeps all bytes but the last
  | "flips a byte" // put keeps the size, one byte changed
  | "hides the final name" // list leaves out what a rename produced
  | "renames nothing"; // rename answers success and does nothing

export class LyingTransport extends MemoryTransport {
  private renamed = new Set<string>();
  constructor(private readonly lie: Lie) {
    super("memory://liar");
  }
  override async put(localPath: string, name: string): Promise<void> {
    await super.put(localPath, name);
    const b = this.files.get(name)!;
    if (this.lie === "truncates the upload") this.files.set(name, b.slice(0, -1));
    if (this.lie === "flips a byte" && !name.includes(".sha256")) b[b.length >> 1] ^= 0x01;
  }
  override rename(from: string, to: string): Promise<void> {
    if (this.lie === "renames nothing") return Promise.resolve();
    this.renamed.add(to);
    return super.rename(from, to);
  }
  override async list(): Promise<RemoteEntry[]> {
    const all = await super.list();
    return this.lie === "hides the final name" ? all.filter((e) => !this.renamed.has(e.name)) : all;
  }
}
