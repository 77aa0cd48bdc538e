/**
 * Access rules, stowage's addition to registry:2's all-or-nothing auth:
 *
 *   access:                          # the first rule whose repository glob matches decides
 *     - repository: "docker.io/**"
 *       pull: [anonymous]            # anyone, with or without credentials
 *     - repository: "team-a/**"
 *       pull: [alice, group:ci]
 *       push: [alice]
 *   groups:
 *     ci: [runner-1, runner-2]
 *
 * Subjects: `anonymous` (everyone), `authenticated` (any user whose credentials verified),
 * `group:<name>`, or a user name. No matching rule, or an action the rule does not list: denied.
 */
import { compileGlob, type RepoMatcher } from './glob.js';
import type { Principal } from './principal.js';
import { ACTIONS, type Action } from './scope.js';

export interface AccessRuleOptions {
  repository: string;
  pull?: readonly string[];
  push?: readonly string[];
  delete?: readonly string[];
}

export interface AccessOptions {
  rules: readonly AccessRuleOptions[];
  groups?: Readonly<Record<string, readonly string[]>>;
}

type Subject = (p: Principal) => boolean;

interface CompiledRule {
  pattern: string;
  matches: RepoMatcher;
  subjects: Record<Action, Subject[]>;
}

export class AccessPolicy {
  private readonly rules: CompiledRule[];

  constructor(options: AccessOptions) {
    const groups = new Map<string, ReadonlySet<string>>();
    for (const [name, members] of Object.entries(options.groups ?? {})) groups.set(name, new Set(members));
    this.rules = options.rules.map((rule, i) => {
      const where = `access[${i}]`;
      let matches: RepoMatcher;
      try {
        matches = compileGlob(rule.repository);
      } catch (e) {
        throw new Error(`${where}.repository: ${(e as Error).message}`);
      }
      const subjects = {} as Record<Action, Subject[]>;
      for (const action of ACTIONS) {
        subjects[action] = (rule[action] ?? []).map((s) => subject(s, groups, `${where}.${action}`));
      }
      return { pattern: rule.repository, matches, subjects };
    });
  }

  /** The rule that decides for `repository`, for logs; undefined when none matches. */
  ruleFor(repository: string): string | undefined {
    return this.rules.find((r) => r.matches(repository))?.pattern;
  }

  allows(principal: Principal, repository: string, action: Action): boolean {
    const rule = this.rules.find((r) => r.matches(repository));
    return rule !== undefined && rule.subjects[action].some((s) => s(principal));
  }
}

function subject(text: string, groups: Map<string, ReadonlySet<string>>, where: string): Subject {
  if (text === 'anonymous') return () => true;
  if (text === 'authenticated') return (p) => p.credentials && p.user !== undefined;
  if (text.startsWith('group:')) {
    const members = groups.get(text.slice('group:'.length));
    if (!members) throw new Error(`${where}: group "${text.slice('group:'.length)}" is not defined under groups`);
    return (p) => p.credentials && p.user !== undefined && members.has(p.user);
  }
  if (text === '' || text.includes(':')) throw new Error(`${where}: "${text}" is not a user, group:<name>, anonymous or authenticated`);
  return (p) => p.credentials && p.user === text;
}
