import {access, readFile, stat} from 'node:fs/promises'
import {constants as fsConstants, statSync} from 'node:fs'
import {homedir} from 'node:os'
import {dirname, isAbsolute, join, resolve} from 'node:path'

import {isMap, isScalar, isSeq, LineCounter, type Node as YamlNode, parseDocument} from 'yaml'
import type {z} from 'zod'

import {ConfigError} from '../errors.js'
import {type HomelabConfig, makeConfigSchema, type ProblemParams, resolveLocalPath, type SchemaOptions} from './schema.js'
import {closestKeys} from './suggest.js'

export const CONFIG_FILE_NAMES = ['homelab.yaml', 'homelab.yml'] as const
export const CONFIG_ENV = 'HOMELAB_CONFIG'

/** One thing wrong in the cluster file, located as precisely as the YAML allows. */
export interface ConfigProblem {
  file: string
  /** `nodes[2].role`; empty for the file as a whole. */
  path: string
  /** 1-based, when known. */
  line?: number
  column?: number
  /** The problem without file and path: `must be "server" or "agent", got "worker"`. */
  problem: string
  hint: string
}

/** Renders a problem as one line: `homelab.yaml:14:11: nodes[2].role: must be …`. */
export function formatProblem(p: ConfigProblem): string {
  const where = p.line === undefined ? p.file : `${p.file}:${p.line}:${p.column ?? 1}`
  return `${where}: ${p.path ? `${p.path}: ` : ''}${p.problem}`
}

/**
 * The cluster file is invalid. The message has one line per problem (the first stands alone);
 * the hint one line per distinct fix. `problems` is there for `--json`.
 */
export class ConfigProblemsError extends ConfigError {
  readonly problems: readonly ConfigProblem[]

  constructor(problems: readonly ConfigProblem[]) {
    const [first] = problems
    super(problems.map(formatProblem).join('\n'), {
      file: first?.file,
      path: first?.path,
      hint: [...new Set(problems.map((p) => p.hint))].join('\n'),
    })
    this.problems = problems
  }
}

export interface ConfigSearchOptions {
  /** `--config`. */
  explicit?: string
  env: Readonly<Record<string, string | undefined>>
  cwd: string
  home: string
}

export interface ConfigPlace {
  path: string
  source: 'flag' | 'env' | 'cwd' | 'xdg'
}

/** Where the cluster file is looked for, in order: --config, HOMELAB_CONFIG, the cwd, XDG. */
export function configSearchPlaces(options: ConfigSearchOptions): ConfigPlace[] {
  const anchor = {home: options.home, baseDir: options.cwd}
  if (options.explicit) return [{path: resolveLocalPath(options.explicit, anchor), source: 'flag'}]
  const fromEnv = options.env[CONFIG_ENV]
  if (fromEnv) return [{path: resolveLocalPath(fromEnv, anchor), source: 'env'}]
  // The XDG spec says to ignore a relative XDG_CONFIG_HOME.
  const xdg = options.env.XDG_CONFIG_HOME
  const configHome = xdg && isAbsolute(xdg) ? xdg : join(options.home, '.config')
  return [
    ...CONFIG_FILE_NAMES.map((name) => ({path: resolve(options.cwd, name), source: 'cwd' as const})),
    ...CONFIG_FILE_NAMES.map((name) => ({path: join(configHome, 'homelab', name), source: 'xdg' as const})),
  ]
}

/**
 * The cluster file to use. An explicit path (--config or HOMELAB_CONFIG) is returned as given
 * (made absolute) even when it does not exist, so loading it reports that instead of quietly
 * using another file. Otherwise the first existing file of the search, or undefined.
 */
export function findConfigFile(options: ConfigSearchOptions): string | undefined {
  const places = configSearchPlaces(options)
  if (places[0]?.source === 'flag' || places[0]?.source === 'env') return places[0].path
  return places.find((place) => isFile(place.path))?.path
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile()
  } catch {
    return false
  }
}

/** Finds, reads and validates the cluster file. Throws ConfigError with the fix. */
/** Settings the file gives itself, as opposed to defaults: detection fills in only what is not given. */
export interface ExplicitSettings {
  distribution: boolean
  /** install.binDir at the top level (a node's own install.binDir is always explicit). */
  binDir: boolean
}

export interface LoadedConfig {
  config: HomelabConfig
  file: string
  explicit: ExplicitSettings
}

export interface LoadOptions {
  /**
   * Refuse identity files (ssh.identityFile, nodes[].ssh.identityFile) that are missing or
   * unreadable, naming the file and the line that configures it (default true). Off for the
   * commands that never log in to a node (the plan commands).
   */
  checkIdentityFiles?: boolean
}

export async function loadConfig(options: ConfigSearchOptions & SchemaOptions & LoadOptions): Promise<LoadedConfig> {
  const places = configSearchPlaces(options)
  const file = findConfigFile(options)
  if (file === undefined) {
    const dirs = [...new Set(places.map((p) => dirname(p.path)))]
    throw new ConfigError(`no cluster file found: looked for ${CONFIG_FILE_NAMES.join(' or ')} in ${dirs.join(' and ')}`, {
      hint: `create ${places[0].path} (minimal content: "nodes: [{name: server-1, host: 10.0.0.11, role: server}]"; see the README's config file reference), or pass --config <file> or set ${CONFIG_ENV}`,
    })
  }
  const source = places[0].source === 'flag' ? ' (from --config)' : places[0].source === 'env' ? ` (from ${CONFIG_ENV})` : ''
  const fix = places[0].source === 'flag' ? 'pass the path of an existing file to --config' : places[0].source === 'env' ? `set ${CONFIG_ENV} to an existing file, or unset it` : 'check the file'
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EISDIR' ? 'is a directory' : code === 'EACCES' ? 'is not readable (permission denied)' : `cannot be read (${(error as Error).message})`
    throw new ConfigError(`config file ${file}${source} ${why}`, {
      file,
      cause: error,
      hint: code === 'EISDIR' ? `point to the homelab.yaml inside it: ${join(file, 'homelab.yaml')}` : code === 'EACCES' ? `make it readable: chmod u+r ${file}` : fix,
    })
  }
  const {config, explicit, locate} = parse(text, file, {home: options.home, defaultDistribution: options.defaultDistribution})
  if (options.checkIdentityFiles !== false) {
    const problems = await identityFileProblems(config, file, locate)
    if (problems.length > 0) throw new ConfigProblemsError(problems)
  }
  return {config, explicit, file}
}

/**
 * A configured identity file that is not there would otherwise show up only at login, once per
 * node, as "no readable identity file". Nodes that are reached without SSH are not asked.
 */
async function identityFileProblems(config: HomelabConfig, file: string, locate: Locate): Promise<ConfigProblem[]> {
  const places: Array<{path: Segment[]; identityFile: string}> = []
  if (config.ssh.identityFile) places.push({path: ['ssh', 'identityFile'], identityFile: config.ssh.identityFile})
  config.nodes.forEach((node, i) => {
    if (node.connection !== 'local' && node.ssh?.identityFile) places.push({path: ['nodes', i, 'ssh', 'identityFile'], identityFile: node.ssh.identityFile})
  })
  const problems: ConfigProblem[] = []
  for (const {path, identityFile} of places) {
    const why = await unreadable(identityFile)
    if (!why) continue
    const pathText = formatPath(path)
    const pos = locate(path, false)
    problems.push({
      file,
      path: pathText,
      line: pos?.line,
      column: pos?.column,
      problem: `the identity file ${identityFile} ${why}`,
      hint:
        why === 'is not readable (permission denied)'
          ? `make it readable: chmod u+r ${identityFile}`
          : why === 'is a public key, not the private key'
            ? `set ${pathText} to the private key${identityFile.endsWith('.pub') ? `: ${identityFile.slice(0, -'.pub'.length)}` : ' (the file without .pub)'}`
            : `set ${pathText} to your private key (e.g. ~/.ssh/id_ed25519), or remove it to use the SSH agent, ~/.ssh/config's IdentityFile and the default keys`,
    })
  }
  return problems
}

/** An OpenSSH public key line: `ssh-ed25519 AAAA…`, `ecdsa-sha2-nistp256 AAAA…`, `sk-ssh-ed25519@openssh.com AAAA…`. */
const PUBLIC_KEY_LINE = /^(?:ssh-(?:ed25519|rsa|dss)|ecdsa-sha2-\S+|sk-\S+@openssh\.com)\s+AAAA/

/** Why a private key file cannot be read, or undefined when it can. */
async function unreadable(path: string): Promise<string | undefined> {
  try {
    if ((await stat(path)).isDirectory()) return 'is a directory, not a key file'
    await access(path, fsConstants.R_OK)
    // The public half named instead of the private key (id_ed25519.pub): it can never log in.
    const head = (await readFile(path, 'utf8')).slice(0, 200).trimStart()
    if (PUBLIC_KEY_LINE.test(head)) return 'is a public key, not the private key'
    return undefined
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return 'does not exist'
    if (code === 'EACCES' || code === 'EPERM') return 'is not readable (permission denied)'
    return `cannot be read (${(error as Error).message})`
  }
}

/**
 * Validates the text of a cluster file. `file` is used in messages and anchors relative paths;
 * `home` anchors `~` (default: this user's home).
 */
export function parseConfig(text: string, file: string, options: {home?: string} & SchemaOptions = {}): HomelabConfig {
  return parseConfigWithSources(text, file, options).config
}

/** parseConfig, and which settings the file gave itself. */
export function parseConfigWithSources(text: string, file: string, options: {home?: string} & SchemaOptions = {}): {config: HomelabConfig; explicit: ExplicitSettings} {
  const {config, explicit} = parse(text, file, options)
  return {config, explicit}
}

/** parseConfigWithSources, and where in the file each setting is (for later checks). */
function parse(text: string, file: string, options: {home?: string} & SchemaOptions): {config: HomelabConfig; explicit: ExplicitSettings; locate: Locate} {
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, {lineCounter, prettyErrors: true, uniqueKeys: true})
  if (doc.errors.length > 0) {
    // The parser goes on after the first error and reports what follows from it (one tab gave
    // eleven errors): name the first, where to look, and how many came after it.
    const [e] = doc.errors
    const pos = e.linePos?.[0]
    const more = doc.errors.length - 1
    throw new ConfigProblemsError([
      {
        file,
        path: '',
        line: pos?.line,
        column: pos?.col,
        problem: `YAML syntax error: ${e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')}${more > 0 ? ` (and ${more} more after it, likely caused by this one)` : ''}`,
        hint: pos ? `fix the YAML at line ${pos.line} of ${file} (indent with spaces; quote values that contain ": " or " #")` : `fix the YAML syntax of ${file}`,
      },
    ])
  }

  let raw: unknown
  try {
    raw = doc.toJS({maxAliasCount: 1000})
  } catch (error) {
    throw new ConfigProblemsError([{file, path: '', problem: `cannot be read as YAML: ${(error as Error).message}`, hint: `fix ${file}`}])
  }
  if (raw === null || raw === undefined) {
    throw new ConfigProblemsError([
      {file, path: '', problem: 'the file is empty', hint: 'list at least the nodes, e.g. "nodes: [{name: server-1, host: 10.0.0.11, role: server}]", or set discover: true'},
    ])
  }
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigProblemsError([
      {file, path: '', line: 1, column: 1, problem: `must be a mapping of settings at the top level, got ${describe(raw)}`, hint: 'start the file with keys such as distribution:, ssh: and nodes:'},
    ])
  }

  const schema = makeConfigSchema({home: options.home ?? homedir(), baseDir: dirname(resolve(file))}, {defaultDistribution: options.defaultDistribution})
  const input = withoutNulls(raw) as {distribution?: unknown; install?: {binDir?: unknown}}
  const result = schema.safeParse(input)
  const locate = locator(doc.contents, lineCounter)
  if (result.success) return {config: result.data, explicit: {distribution: input.distribution !== undefined, binDir: input.install?.binDir !== undefined}, locate}

  const problems = result.error.issues.flatMap((issue) => problemsOf(issue, input, schema, file, locate))
  problems.sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity) || (a.column ?? 0) - (b.column ?? 0))
  throw new ConfigProblemsError(problems)
}

type Segment = string | number
type Locate = (path: readonly Segment[], atKey: boolean) => {line: number; column: number} | undefined

// `key:` with nothing after it is YAML null; people leave sections empty or comment their
// content out, which means "not set", not "set to nothing".
function withoutNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutNulls)
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null).map(([k, v]) => [k, withoutNulls(v)]))
  }
  return value
}

function locator(root: unknown, lines: LineCounter): Locate {
  const at = (node: YamlNode | null | undefined) => {
    const offset = node?.range?.[0]
    if (offset === undefined) return undefined
    const {line, col} = lines.linePos(offset)
    return {line, column: col}
  }
  return (path, atKey) => {
    let node = root as YamlNode | null | undefined
    // The document's start says nothing about a key missing at the top level.
    let found = path.length === 0 ? at(node) : undefined
    for (const [i, segment] of path.entries()) {
      const last = i === path.length - 1
      if (isMap(node)) {
        const pair = node.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === segment)
        if (!pair) break
        const key = pair.key as YamlNode
        const value = pair.value as YamlNode | null
        found = (last && atKey) || !value ? (at(key) ?? found) : (at(value) ?? found)
        node = value
      } else if (isSeq(node) && typeof segment === 'number') {
        node = node.items[segment] as YamlNode | undefined
        if (!node) break
        found = at(node) ?? found
      } else {
        break
      }
    }
    return found
  }
}

function formatPath(path: readonly Segment[]): string {
  return path.reduce<string>((out, s) => (typeof s === 'number' ? `${out}[${s}]` : out ? `${out}.${s}` : s), '')
}

function valueAt(root: unknown, path: readonly Segment[]): unknown {
  let v: unknown = root
  for (const s of path) {
    if (v === null || typeof v !== 'object') return undefined
    v = (v as Record<string | number, unknown>)[s]
  }
  return v
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return 'nothing'
  if (Array.isArray(value)) return 'a list'
  if (typeof value === 'object') return 'a mapping'
  if (typeof value === 'string') return JSON.stringify(value)
  return String(value)
}

const EXPECTED: Record<string, string> = {
  string: 'text',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  object: 'a mapping (key: value lines)',
  array: 'a list',
}

function orList(values: readonly string[]): string {
  return values.length <= 1 ? values.join('') : `${values.slice(0, -1).join(', ')} or ${values.at(-1)}`
}

function problemsOf(issue: z.core.$ZodIssue, input: unknown, schema: z.ZodType, file: string, locate: Locate): ConfigProblem[] {
  const path = issue.path.filter((s): s is Segment => typeof s === 'string' || typeof s === 'number')
  const make = (p: readonly Segment[], problem: string, hint: string, atKey = false): ConfigProblem => {
    const pathText = formatPath(p)
    const parentText = formatPath(p.slice(0, -1)) || 'the top level'
    const pos = locate(p, atKey)
    return {
      file,
      path: pathText,
      line: pos?.line,
      column: pos?.column,
      problem,
      hint: hint.replaceAll('{path}', pathText).replaceAll('{parent}', parentText),
    }
  }
  const value = valueAt(input, path)

  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => unknownKey(schema, path, key, make))
    case 'invalid_value': {
      const values = issue.values.map((v) => JSON.stringify(v))
      return [make(path, `must be ${orList(values)}, got ${describe(value)}`, `set {path} to ${orList(issue.values.map(String))}`)]
    }
    case 'invalid_type': {
      if (value === undefined) {
        const key = String(path.at(-1))
        return [make(path, 'is required', `add ${key}: … to {parent}`)]
      }
      const expected = EXPECTED[issue.expected] ?? issue.expected
      // An integer check that failed on a number reads better as "a whole number".
      const want = issue.expected === 'number' && typeof value === 'number' ? EXPECTED.int : expected
      const quoted = issue.expected === 'number' && typeof value === 'string' && /^-?\d+$/.test(value.trim())
      const fix = quoted ? `write {path} without quotes: ${String(path.at(-1))}: ${value.trim()}` : `set {path} to ${want}`
      return [make(path, `must be ${want}, got ${describe(value)}`, fix)]
    }
    case 'too_small': {
      const min = Number(issue.minimum)
      if (issue.origin === 'string') return [make(path, 'must not be empty', 'set {path} to a value, or remove it to use the default')]
      if (issue.origin === 'array') return [make(path, `must list at least ${min}`, 'add an entry to {path}, or remove it to use the default')]
      return [make(path, `must be at least ${min}, got ${describe(value)}`, `set {path} to ${min} or more`)]
    }
    case 'too_big': {
      const max = Number(issue.maximum)
      return [make(path, `must be at most ${max}, got ${describe(value)}`, `set {path} to ${max} or less`)]
    }
    case 'custom': {
      const hint = (issue.params as ProblemParams | undefined)?.hint ?? 'fix {path}'
      return [make(path, issue.message, hint)]
    }
    default:
      return [make(path, issue.message, 'fix {path}')]
  }
}

function unknownKey(
  schema: z.ZodType,
  parent: readonly Segment[],
  key: string,
  make: (p: readonly Segment[], problem: string, hint: string, atKey?: boolean) => ConfigProblem,
): ConfigProblem {
  const path = [...parent, key]
  const here = Object.keys(shapeAt(schema, parent) ?? {})
  const close = closestKeys(key, here)
  const parentText = formatPath(parent)
  const prefix = parentText ? `${parentText}.` : ''
  if (close.length > 0) {
    const names = close.map((k) => `\`${k}\``)
    return make(path, `unknown key (did you mean ${orList(names)}?)`, `rename it to ${orList(close.map((k) => prefix + k))}, or remove it`, true)
  }
  const elsewhere = allKeyPaths(schema).filter((p) => p.key === key && p.parent !== genericPath(parent))
  if (elsewhere.length > 0) {
    const where = orList(elsewhere.map((p) => p.parent || 'the top level'))
    return make(path, `unknown key here; \`${key}\` belongs under ${where}`, `move it under ${where}`, true)
  }
  return make(path, 'unknown key', `remove it; the keys allowed ${parentText ? `under ${parentText}` : 'at the top level'} are: ${here.join(', ')}`, true)
}

// Zod's structure, read to list the keys a mapping allows; wrappers (optional, defaults,
// transforms) are looked through.
interface Inner {
  _zod: {def: {type: string; shape?: Record<string, Inner>; innerType?: Inner; in?: Inner; element?: Inner}}
}

function unwrap(schema: Inner): Inner {
  let s = schema
  for (let i = 0; i < 20; i++) {
    const def = s._zod.def
    const next = def.innerType ?? (def.type === 'pipe' ? def.in : undefined)
    if (!next) return s
    s = next
  }
  return s
}

function shapeAt(schema: z.ZodType, path: readonly Segment[]): Record<string, Inner> | undefined {
  let s = unwrap(schema as unknown as Inner)
  for (const segment of path) {
    const def = s._zod.def
    if (typeof segment === 'number' && def.type === 'array' && def.element) s = unwrap(def.element)
    else if (typeof segment === 'string' && def.type === 'object' && def.shape?.[segment]) s = unwrap(def.shape[segment])
    else return undefined
  }
  return s._zod.def.type === 'object' ? s._zod.def.shape : undefined
}

function genericPath(path: readonly Segment[]): string {
  return path.reduce<string>((out, s) => (typeof s === 'number' ? `${out}[]` : out ? `${out}.${s}` : s), '')
}

function allKeyPaths(schema: z.ZodType): Array<{parent: string; key: string}> {
  const out: Array<{parent: string; key: string}> = []
  const walk = (s: Inner, parent: string) => {
    const def = unwrap(s)._zod.def
    if (def.type === 'array' && def.element) walk(def.element, `${parent}[]`)
    if (def.type !== 'object' || !def.shape) return
    for (const [key, child] of Object.entries(def.shape)) {
      out.push({parent, key})
      walk(child, parent ? `${parent}.${key}` : key)
    }
  }
  walk(schema as unknown as Inner, '')
  return out
}
