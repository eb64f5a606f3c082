/**
 * Which Deno archivist is built with, and which form of archivist is running (`archivist --version`).
 *
 * DENO_VERSION is the one declaration of the pinned runtime: `deno task dist` packs that version into the
 * self-extracting file, and a test holds .ci/run and install.sh (shell, which cannot import this) to the same value.
 */
export const DENO_VERSION = "2.9.6";

/**
 * The three forms archivist runs in:
 * - compiled: the output of `deno compile` (Deno.build.standalone);
 * - self-extracting: `dist/archivist` built by tools/dist.ts; its shell header sets ARCHIVIST_FORM before it execs
 *   the unpacked runtime on the bundle;
 * - source: `deno run main.ts` (development, the test suite).
 */
export function runtimeForm(env: { get(name: string): string | undefined }): string {
  if (Deno.build.standalone) return `compiled with deno compile, Deno ${Deno.version.deno}`;
  const form = env.get("ARCHIVIST_FORM");
  if (form) return `${form}, Deno ${Deno.version.deno}`;
  return `deno run, Deno ${Deno.version.deno}`;
}
