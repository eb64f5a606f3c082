/**
 * The code's shape, measured from the TypeScript syntax tree (issue #24's "done when"): functions longer than 80
 * lines, types with more than 12 optional fields, runtime import cycles, loose files at src/'s top. The structure
 * test asserts on it; `deno run -A tools/structure.ts` prints it.
 */
import ts from "typescript";
import { dirname, join, relative, resolve } from "node:path";

export interface LongFunction {
  file: string;
  name: string;
  line: number;
  lines: number;
}

function* walkTs(dir: string): Generator<string> {
  for (const e of Deno.readDirSync(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) yield* walkTs(p);
    else if (e.name.endsWith(".ts")) yield p;
  }
}

function nameOf(node: ts.Node, sf: ts.SourceFile): string {
  const n = (node as { name?: ts.Node }).name;
  if (n) return n.getText(sf);
  const p = node.parent;
  if (p && ts.isVariableDeclaration(p)) return p.name.getText(sf);
  if (p && ts.isPropertyAssignment(p)) return p.name.getText(sf);
  if (p && ts.isCallExpression(p)) return `(argument of ${p.expression.getText(sf).slice(0, 40)})`;
  return "(anonymous)";
}

/** Every function, method and arrow function with a body, longer than `max` lines (first to last line). */
export function longFunctions(root: string, max = 80): LongFunction[] {
  const out: LongFunction[] = [];
  for (const file of walkTs(root)) {
    const sf = ts.createSourceFile(file, Deno.readTextFileSync(file), ts.ScriptTarget.Latest, true);
    const visit = (node: ts.Node) => {
      if (ts.isFunctionLike(node) && (node as { body?: ts.Node }).body) {
        const first = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
        const last = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
        if (last - first + 1 > max) {
          out.push({ file: relative(root, file), name: nameOf(node, sf), line: first + 1, lines: last - first + 1 });
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }
  return out.sort((a, b) => b.lines - a.lines);
}

/** Interfaces and object type literals with more than `max` optional members. */
export function wideTypes(root: string, max = 12): { file: string; name: string; optional: number }[] {
  const out: { file: string; name: string; optional: number }[] = [];
  for (const file of walkTs(root)) {
    const sf = ts.createSourceFile(file, Deno.readTextFileSync(file), ts.ScriptTarget.Latest, true);
    const visit = (node: ts.Node) => {
      if (ts.isInterfaceDeclaration(node) || ts.isTypeLiteralNode(node)) {
        const optional = node.members.filter((m) => (m as { questionToken?: ts.Node }).questionToken).length;
        if (optional > max) out.push({ file: relative(root, file), name: nameOf(node, sf), optional });
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }
  return out;
}

/** The runtime imports of each file (type-only imports left out), as paths relative to `root`'s parent. */
function runtimeImports(file: string): string[] {
  const sf = ts.createSourceFile(file, Deno.readTextFileSync(file), ts.ScriptTarget.Latest, true);
  const out: string[] = [];
  for (const s of sf.statements) {
    if ((ts.isImportDeclaration(s) || ts.isExportDeclaration(s)) && s.moduleSpecifier && ts.isStringLiteral(s.moduleSpecifier)) {
      const clause = ts.isImportDeclaration(s) ? s.importClause : undefined;
      if (ts.isImportDeclaration(s) && clause?.isTypeOnly) continue;
      if (ts.isExportDeclaration(s) && s.isTypeOnly) continue;
      if (clause && !clause.name && clause.namedBindings && ts.isNamedImports(clause.namedBindings)) {
        if (clause.namedBindings.elements.length && clause.namedBindings.elements.every((e) => e.isTypeOnly)) continue;
      }
      const spec = s.moduleSpecifier.text;
      if (spec.startsWith(".")) out.push(resolve(dirname(file), spec));
    }
  }
  return out;
}

/** Runtime import cycles among the files under the given folders, each as a list of files. */
export function importCycles(roots: string[], base: string): string[][] {
  const graph = new Map<string, string[]>();
  for (const r of roots) for (const f of walkTs(r)) graph.set(resolve(f), runtimeImports(f));
  const cycles: string[][] = [];
  const state = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const dfs = (n: string) => {
    state.set(n, 1);
    stack.push(n);
    for (const m of graph.get(n) ?? []) {
      if (!graph.has(m)) continue;
      if (state.get(m) === 1) cycles.push(stack.slice(stack.indexOf(m)).map((f) => relative(base, f)));
      else if (!state.has(m)) dfs(m);
    }
    stack.pop();
    state.set(n, 2);
  };
  for (const n of graph.keys()) if (!state.has(n)) dfs(n);
  return cycles;
}

/** The .ts files directly in `dir`. */
export function looseFiles(dir: string): string[] {
  return [...Deno.readDirSync(dir)].filter((e) => e.isFile && e.name.endsWith(".ts")).map((e) => e.name).sort();
}

if (import.meta.main) {
  const root = resolve(dirname(new URL(import.meta.url).pathname), "..");
  const src = join(root, "src");
  console.log("functions over 80 lines:");
  for (const f of longFunctions(src)) console.log(`  ${f.lines}\t${f.file}:${f.line} ${f.name}`);
  console.log("types with more than 12 optional fields:");
  for (const t of wideTypes(src)) console.log(`  ${t.optional}\t${t.file} ${t.name}`);
  console.log("runtime import cycles:");
  for (const c of importCycles([src, join(root, "tools")], root)) console.log(`  ${c.join(" -> ")}`);
  console.log(`loose files in src/: ${looseFiles(src).length} (${looseFiles(src).join(" ")})`);
}
