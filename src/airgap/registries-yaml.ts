/**
 * k3s's and rke2's `registries.yaml` (`/etc/rancher/k3s/registries.yaml`,
 * `/etc/rancher/rke2/registries.yaml`): the file each node's containerd registry config is
 * generated from at start. Parsed as k3s reads it, so a pre-flight check asks the mirrors the
 * node will ask, with the credentials and CA the node will use.
 */
import {parse} from 'yaml'

import {z} from '../bundled/zod.js'
import {PreflightError} from '../errors.js'

/** One `rewrite` rule: a Go regular expression on the repository name (never the tag) and its replacement. */
export interface RewriteRule {
  pattern: string
  replacement: string
}

export interface RegistryMirror {
  /** The endpoint URLs as written, in the order containerd tries them. */
  endpoints: string[]
  /** In file order. */
  rewrite: RewriteRule[]
}

export interface RegistryAuth {
  username?: string
  password?: string
  /** base64 of `username:password`. */
  auth?: string
  identityToken?: string
}

export interface RegistryTls {
  /** Paths on the node, not on the machine running homelab. */
  caFile?: string
  certFile?: string
  keyFile?: string
  insecureSkipVerify: boolean
}

export interface RegistryHostConfig {
  auth?: RegistryAuth
  tls?: RegistryTls
}

export interface RegistriesConfig {
  /** Where the file was read from (`node:/etc/rancher/k3s/registries.yaml`), for messages. */
  source: string
  /** By registry host (`docker.io`, `registry.example.com:5000`) or `*`. */
  mirrors: Record<string, RegistryMirror>
  /** By endpoint host[:port] or `*`. */
  configs: Record<string, RegistryHostConfig>
  /** Keys k3s does not read (a typo such as `endpoints:` silently means "no mirror" on the node). */
  ignoredKeys: string[]
}

// k3s decodes the file into Go strings and bools (YAML 1.1): a password written as 0123 is the
// text "0123", and yes/on are true. Parsing with the failsafe schema (every scalar a string, plus
// null) and converting here keeps both, where YAML 1.2 would turn 0123 into the number 123.
const text = z.string()
const yamlBool = z.union([z.boolean(), z.string()]).transform((value, ctx) => {
  if (typeof value === 'boolean') return value
  if (/^(y|yes|true|on)$/i.test(value)) return true
  if (/^(n|no|false|off)$/i.test(value)) return false
  ctx.addIssue({code: 'custom', message: `must be true or false, got "${value}"`})
  return z.NEVER
})

const mirrorSchema = z.strictObject({
  endpoint: z.array(text).optional(),
  rewrite: z.record(text, text).optional(),
})
const configSchema = z.strictObject({
  auth: z.strictObject({username: text.optional(), password: text.optional(), auth: text.optional(), identity_token: text.optional()}).optional(),
  tls: z
    .strictObject({ca_file: text.optional(), cert_file: text.optional(), key_file: text.optional(), insecure_skip_verify: yamlBool.optional()})
    .optional(),
})
const fileSchema = z.strictObject({
  mirrors: z.record(text, mirrorSchema.optional()).optional(),
  configs: z.record(text, configSchema.optional()).optional(),
})

function invalid(source: string, problem: string): PreflightError {
  return new PreflightError(`${source} is not a valid registries.yaml: ${problem}`, {
    hint: 'correct the file on the node; its shape is in the k3s (or rke2) docs, "Private Registry Configuration"',
  })
}

// `key:` with nothing after it is null: k3s reads it as "not set" (the docs' own examples do this).
function withoutNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.filter((v) => v !== null).map(withoutNulls)
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null).map(([k, v]) => [k, withoutNulls(v)]))
  return value
}

/**
 * Parses a registries.yaml; `source` names it in errors. Keys k3s would ignore are dropped and
 * listed in `ignoredKeys`; anything else malformed (YAML, types, a rewrite k3s cannot compile) is
 * a PreflightError naming the file and the key, on one line.
 */
export function parseRegistriesYaml(content: string, source: string): RegistriesConfig {
  let raw: unknown
  try {
    raw = parse(content, {schema: 'failsafe', customTags: ['null']})
  } catch (error) {
    // The first line only: the YAML error's code frame would quote the file, passwords included.
    throw invalid(source, (error as Error).message.split('\n')[0]!.replace(/:$/, ''))
  }
  raw = withoutNulls(raw ?? {})
  if (typeof raw !== 'object' || Array.isArray(raw)) throw invalid(source, 'the top level must be a mapping with mirrors: and configs:')

  const ignoredKeys: string[] = []
  let parsed = fileSchema.safeParse(raw)
  if (!parsed.success && parsed.error.issues.every((i) => i.code === 'unrecognized_keys')) {
    // Like k3s, unknown keys are ignored rather than refused; drop them and parse once more.
    for (const issue of parsed.error.issues) {
      const at = issue.path.reduce<Record<string, unknown>>((node, key) => node[key as string] as Record<string, unknown>, raw as Record<string, unknown>)
      for (const key of (issue as {keys: string[]}).keys) {
        ignoredKeys.push([...issue.path, key].join('.'))
        delete at[key]
      }
    }
    parsed = fileSchema.safeParse(raw)
  }
  if (!parsed.success) {
    const issue = parsed.error.issues.find((i) => i.code !== 'unrecognized_keys') ?? parsed.error.issues[0]!
    throw invalid(source, `${issue.path.join('.') || '(top level)'}: ${issue.message}`)
  }

  const mirrors: Record<string, RegistryMirror> = {}
  for (const [host, mirror] of Object.entries(parsed.data.mirrors ?? {})) {
    const rewrite = Object.entries(mirror?.rewrite ?? {}).map(([pattern, replacement]) => ({pattern, replacement}))
    for (const rule of rewrite) {
      try {
        new RegExp(rule.pattern)
      } catch (error) {
        throw invalid(source, `mirrors.${host}.rewrite: "${rule.pattern}" is not a regular expression (${(error as Error).message})`)
      }
    }
    mirrors[host] = {endpoints: mirror?.endpoint ?? [], rewrite}
  }
  const configs: Record<string, RegistryHostConfig> = {}
  for (const [host, config] of Object.entries(parsed.data.configs ?? {})) {
    const {auth, tls} = config ?? {}
    configs[host] = {
      ...(auth && {auth: {username: auth.username, password: auth.password, auth: auth.auth, identityToken: auth.identity_token}}),
      ...(tls && {tls: {caFile: tls.ca_file, certFile: tls.cert_file, keyFile: tls.key_file, insecureSkipVerify: tls.insecure_skip_verify ?? false}}),
    }
  }
  return {source, mirrors, configs, ignoredKeys}
}

/** One place containerd will try for an image, normalised as k3s writes it into hosts.toml. */
export interface RegistryEndpoint {
  /** `https://registry.example.com:5000/v2`: the URL manifests are asked under. */
  url: string
  /** `https://registry.example.com:5000` (or with its path when the path is not `/v2`): for messages. */
  display: string
  /** `host[:port]` as the `configs` key for it is looked up. */
  host: string
  /** Rewrites apply to mirror endpoints only, never to the default endpoint. */
  rewrite: RewriteRule[]
  config: RegistryHostConfig
  /** The registry itself (containerd's implicit last resort), not a mirror. */
  isDefault: boolean
}

export interface MirrorMatch {
  /** The `mirrors` key that matched: the registry host or `*`. */
  key: string
  /** The mirrors in the order containerd tries them, then the default endpoint unless disabled. */
  endpoints: RegistryEndpoint[]
}

export interface MirrorForOptions {
  /** The node runs k3s with `--disable-default-registry-endpoint` (not in registries.yaml). */
  disableDefaultEndpoint?: boolean
}

/**
 * The mirror entry for an image's registry host: the exact host first, then `*`; undefined when
 * neither is configured or the entry leaves no mirror endpoint (the node pulls from upstream).
 * Endpoint URLs that do not parse are skipped, as k3s skips them with a warning in its log.
 */
export function mirrorFor(config: RegistriesConfig, registryHost: string, options: MirrorForOptions = {}): MirrorMatch | undefined {
  const key = config.mirrors[registryHost] ? registryHost : config.mirrors['*'] ? '*' : undefined
  if (key === undefined) return undefined
  const mirror = config.mirrors[key]!
  const fallback = normaliseEndpoint(registryHost)!
  const endpoints: RegistryEndpoint[] = []
  const seen = new Set<string>()
  mirror.endpoints.forEach((written, i) => {
    const endpoint = normaliseEndpoint(written)
    if (!endpoint || seen.has(endpoint.url)) return
    seen.add(endpoint.url)
    // k3s: a last endpoint equal to the registry's own is its default endpoint, not a mirror. Not
    // for `*` (its default stands for each image's own registry) nor without a default endpoint.
    if (i === mirror.endpoints.length - 1 && key !== '*' && !options.disableDefaultEndpoint && endpoint.url === fallback.url) return
    const {registry, ...place} = endpoint
    endpoints.push({...place, rewrite: mirror.rewrite, config: configForHost(config, registry), isDefault: false})
  })
  if (endpoints.length === 0) return undefined
  if (!options.disableDefaultEndpoint) {
    const {registry, ...place} = fallback
    endpoints.push({...place, rewrite: [], config: configForHost(config, registry), isDefault: true})
  }
  return {key, endpoints}
}

/** The repository name a mirror endpoint is asked for: the first matching rule, applied like Go's ReplaceAllString. */
export function rewriteRepository(rules: readonly RewriteRule[], repository: string): string {
  for (const rule of rules) {
    const re = new RegExp(rule.pattern, 'g')
    if (!re.test(repository)) continue
    re.lastIndex = 0
    return repository.replace(re, (...args: unknown[]) => expandGoTemplate(rule.replacement, args))
  }
  return repository
}

// Go's replacement syntax ($1, ${1}, ${name}, $$) is not JavaScript's ($<name>, no ${1}): expand it here.
function expandGoTemplate(template: string, args: unknown[]): string {
  const last = args[args.length - 1]
  const named = typeof last === 'object' && last !== null ? (last as Record<string, string | undefined>) : {}
  const groups = args.slice(0, typeof last === 'object' && last !== null ? -3 : -2) as Array<string | undefined>
  return template.replace(/\$(\$|\{(\w+)\}|(\w+))/g, (_, all: string, braced?: string, bare?: string) => {
    if (all === '$') return '$'
    const name = braced ?? bare!
    const value = /^\d+$/.test(name) ? groups[Number(name)] : named[name]
    return value ?? ''
  })
}

const LOCALHOST = /^(localhost|127(\.\d{1,3}){3}|\[::1\])(:\d+)?$/i

/**
 * As k3s (and containerd) normalise an endpoint: no scheme means https, except http for localhost
 * on a port other than 443; docker.io means registry-1.docker.io; an empty, `/` or `/v2` path is
 * `/v2`, any other path is used as it is written (containerd's override_path).
 */
function normaliseEndpoint(written: string): (Omit<RegistryEndpoint, 'rewrite' | 'config' | 'isDefault'> & {registry: string}) | undefined {
  const hasScheme = written.includes('://')
  let url: URL
  try {
    url = new URL(hasScheme ? written : `https://${written}`)
  } catch {
    return undefined
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined
  if (!hasScheme && LOCALHOST.test(url.host) && url.port !== '' && url.port !== '443') url.protocol = 'http:'
  const registry = url.host === 'registry-1.docker.io' ? 'docker.io' : url.host
  if (url.host === 'docker.io') url.host = 'registry-1.docker.io'
  const path = url.pathname.replace(/\/+$/, '')
  const override = path !== '' && path !== '/v2'
  const origin = `${url.protocol}//${url.host}`
  return {url: `${origin}${override ? path : '/v2'}`, display: override ? `${origin}${path}` : origin, host: url.host, registry}
}

// As k3s: the config under the endpoint's canonical host (registry-1.docker.io) wins over the
// name as written (docker.io). The `*` config is not applied to mirror endpoints: k3s writes it
// for registries without a mirror entry only, so a check using it would use settings containerd does not.
function configForHost(config: RegistriesConfig, registry: string): RegistryHostConfig {
  const canonical = registry === 'docker.io' ? 'registry-1.docker.io' : registry
  return config.configs[canonical] ?? config.configs[registry] ?? {}
}
