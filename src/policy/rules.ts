/**
 * Signature rules (`policy.rules`): matched by the full repository name (the cache repository for
 * cached content: docker.io/acme/app) with the access rules' globs; the first match decides; none
 * matching means no check. Rules are numbered from 1 in messages ("policy rule 2").
 */
import { compileGlob, type RepoMatcher } from '../auth/glob.js';

export type PolicyMode = 'enforce' | 'warn' | 'off';

export interface PolicyRuleOptions {
  repository: string;
  mode: PolicyMode;
  keys: readonly string[];
  push: boolean;
}

export interface PolicyRule extends PolicyRuleOptions {
  /** 1-based, as shown to people. */
  number: number;
  matches: RepoMatcher;
  /** The rule's key sets as one cache key ("release,vendor"). */
  keySetKey: string;
}

export function compileRules(rules: readonly PolicyRuleOptions[], keySets: readonly string[]): PolicyRule[] {
  return rules.map((rule, i) => {
    const where = `policy.rules[${i}]`;
    let matches: RepoMatcher;
    try {
      matches = compileGlob(rule.repository);
    } catch (e) {
      throw new Error(`${where}.repository: ${(e as Error).message}`);
    }
    const unknown = rule.keys.filter((k) => !keySets.includes(k));
    if (unknown.length > 0) throw new Error(`${where}.keys: key set ${unknown.join(', ')} is not defined under policy.keys`);
    return { ...rule, number: i + 1, matches, keySetKey: [...rule.keys].sort().join(',') };
  });
}

export function ruleFor(rules: readonly PolicyRule[], repository: string): PolicyRule | undefined {
  return rules.find((r) => r.matches(repository));
}

/** "set release" / "sets release or vendor", for "no signature by a key of set release". */
export function describeKeySets(rule: PolicyRule): string {
  return rule.keys.length === 1 ? `set ${rule.keys[0]}` : `sets ${rule.keys.join(' or ')}`;
}
