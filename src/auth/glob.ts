/**
 * Repository globs for access rules, matched component by component on the full repository name:
 * `*` matches within one path component, a `**` component matches any number of components
 * (none included). So "docker.io/**" covers every repository cached from docker.io, "team-*" covers
 * "team-a" but not "team-a/app", and "**" covers everything.
 * Hand-written rather than picomatch/minimatch: those implement shell globbing (braces, classes,
 * extglobs, dotfile rules) whose extra syntax would be surprises here; this grammar is two tokens.
 */

export type RepoMatcher = (repository: string) => boolean;

const PATTERN = /^[a-z0-9._\-*]+(\/[a-z0-9._\-*]+)*$/;

export function compileGlob(pattern: string): RepoMatcher {
  if (!PATTERN.test(pattern)) {
    throw new Error(`"${pattern}" is not a repository glob (lowercase name components, / between them, * and **)`);
  }
  const parts = pattern.split('/').map((c) => c === '**' ? '**' as const : componentRegExp(c));
  if (parts.length === 1 && parts[0] === '**') return () => true;
  return (repository) => matchFrom(parts, 0, repository.split('/'), 0);
}

function componentRegExp(component: string): RegExp {
  const source = component.split(/\*+/).map((lit) => lit.replace(/[.\-]/g, '\\$&')).join('[^/]*');
  return new RegExp(`^${source}$`);
}

function matchFrom(parts: Array<RegExp | '**'>, p: number, names: string[], n: number): boolean {
  if (p === parts.length) return n === names.length;
  const part = parts[p]!;
  if (part === '**') {
    for (let k = n; k <= names.length; k++) if (matchFrom(parts, p + 1, names, k)) return true;
    return false;
  }
  return n < names.length && part.test(names[n]!) && matchFrom(parts, p + 1, names, n + 1);
}
