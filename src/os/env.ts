/** The process environment, injected so that tests can give a run its own variables. */
export interface Env {
  get(name: string): string | undefined;
}

export const processEnv: Env = { get: (name) => Deno.env.get(name) };

/** An environment from a plain object (tests). */
export function mapEnv(vars: Record<string, string | undefined>): Env {
  return { get: (name) => vars[name] };
}
