import SSHConfig from 'ssh-config'
import {ConfigError} from '../errors.js'

/**
 * Where to connect and how, for one node: what homelab.yaml says explicitly wins over
 * `~/.ssh/config`, which wins over OpenSSH's defaults. Pure: the caller reads the files.
 */

/** Per-node SSH settings as homelab.yaml states them (node overrides merged over defaults). */
export interface ExplicitSshSettings {
  /** Address to connect to; when unset the node's host (or its ssh config HostName) is used. */
  hostName?: string
  user?: string
  port?: number
  identityFiles?: readonly string[]
  /** `[user@]host[:port]` hops, comma-separated or as a list; `none` disables ssh config's. */
  proxyJump?: string | readonly string[]
  knownHostsFiles?: readonly string[]
}

/** One SSH endpoint, fully resolved. */
export interface SshEndpoint {
  /** The name the user wrote (node host, ssh config alias, or jump spec host). */
  alias: string
  /** Address actually dialled, also the name looked up in known_hosts. */
  host: string
  port: number
  user: string
  /** Absolute paths, in the order to try. */
  identityFiles: string[]
  /** True when no IdentityFile was configured and these are OpenSSH's default names. */
  identityFilesAreDefaults: boolean
  /** Only offer the identity files, not every key the agent holds (IdentitiesOnly). */
  identitiesOnly: boolean
  /** An agent socket named by IdentityAgent; `none` means do not use an agent. */
  identityAgent?: string
  /** First file is where newly accepted keys are written. */
  knownHostsFiles: string[]
  connectTimeoutMs?: number
  keepaliveIntervalMs?: number
  keepaliveCountMax?: number
}

export interface ResolvedSshTarget extends SshEndpoint {
  /** Jump hosts in dialling order: first is dialled directly, each next one through the previous. */
  proxyJump: SshEndpoint[]
}

export interface ResolveSshTargetInput {
  /** The node's host as homelab.yaml names it; may be an ssh config Host alias. */
  host: string
  explicit?: ExplicitSshSettings
  /** Contents of `~/.ssh/config`, or undefined when there is none. */
  sshConfigText?: string
  /** For messages: where sshConfigText came from. */
  sshConfigPath?: string
  localUser: string
  home: string
}

const DEFAULT_IDENTITY_NAMES = ['id_rsa', 'id_ecdsa', 'id_ed25519']
const MAX_JUMP_DEPTH = 8

type Computed = Record<string, string | string[]>

function first(computed: Computed, key: string): string | undefined {
  const value = computed[key]
  if (value === undefined) return undefined
  return Array.isArray(value) ? value[0] : value
}

function all(computed: Computed, key: string): string[] {
  const value = computed[key]
  if (value === undefined) return []
  return Array.isArray(value) ? value : [value]
}

interface TokenContext {
  home: string
  localUser: string
  host: string
  alias: string
  user: string
  port: number
}

/** OpenSSH's `%` tokens that make sense without a connection, then `~`. */
export function expandPath(value: string, ctx: TokenContext, where: {file?: string; directive: string}): string {
  const expanded = value.replace(/%(.)/g, (_m, token: string) => {
    switch (token) {
      case '%':
        return '%'
      case 'd':
        return ctx.home
      case 'u':
        return ctx.localUser
      case 'h':
        return ctx.host
      case 'n':
        return ctx.alias
      case 'r':
        return ctx.user
      case 'p':
        return String(ctx.port)
      default:
        throw new ConfigError(`unsupported token %${token} in ${where.directive} ${value}`, {
          file: where.file,
          path: where.directive,
          hint: `use one of %d %u %h %n %r %p %% in ${where.directive}, or write the path out`,
        })
    }
  })
  if (expanded === '~') return ctx.home
  if (expanded.startsWith('~/')) return `${ctx.home}/${expanded.slice(2)}`
  return expanded
}

function parsePort(value: string | number | undefined, where: {file?: string; path: string}): number | undefined {
  if (value === undefined) return undefined
  const port = typeof value === 'number' ? value : Number(value)
  if (!Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new ConfigError(`invalid SSH port ${JSON.stringify(value)}`, {
      file: where.file,
      path: where.path,
      hint: 'use a port number between 1 and 65535',
    })
  }
  return port
}

function seconds(value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  const n = Number(value)
  return Number.isFinite(n) && n > 0 ? n * 1000 : undefined
}

interface JumpSpec {
  user?: string
  host: string
  port?: number
}

/** `[user@]host[:port]`, `[user@][v6addr]:port`, or `ssh://[user@]host[:port]`. */
export function parseJumpSpec(spec: string, where: {file?: string; path: string}): JumpSpec {
  let rest = spec.trim().replace(/^ssh:\/\//, '')
  let user: string | undefined
  const at = rest.lastIndexOf('@')
  if (at !== -1) {
    user = rest.slice(0, at)
    rest = rest.slice(at + 1)
  }
  let host = rest
  let port: number | undefined
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(rest)
  if (bracketed) {
    host = bracketed[1]!
    port = parsePort(bracketed[2], where)
  } else if (rest.split(':').length === 2) {
    const [h, p] = rest.split(':')
    host = h!
    port = parsePort(p, where)
  }
  if (host === '' || user === '' || /\s/.test(host)) {
    throw new ConfigError(`invalid ProxyJump hop ${JSON.stringify(spec)}`, {
      file: where.file,
      path: where.path,
      hint: 'write hops as [user@]host[:port], separated by commas',
    })
  }
  return {user, host, port}
}

function splitJumps(value: string | readonly string[] | undefined): string[] | undefined {
  if (value === undefined) return undefined
  const list = typeof value === 'string' ? value.split(',') : value.flatMap((v) => v.split(','))
  return list.map((s) => s.trim()).filter((s) => s !== '')
}

export function resolveSshTarget(input: ResolveSshTargetInput): ResolvedSshTarget {
  const config = input.sshConfigText === undefined ? undefined : SSHConfig.parse(input.sshConfigText)
  const lookup = (alias: string): Computed =>
    // matchExec off: resolving a target must never run commands from a config file.
    config ? (config.compute(alias, {ignoreCase: true, matchExec: false}) as Computed) : {}

  const explicit = input.explicit ?? {}
  const file = input.sshConfigPath

  const endpoint = (
    alias: string,
    computed: Computed,
    overrides: {hostName?: string; user?: string; port?: number; identityFiles?: readonly string[]; knownHostsFiles?: readonly string[]},
    fallbacks: {identityFiles?: readonly string[]; knownHostsFiles?: readonly string[]},
    path: string,
  ): SshEndpoint => {
    const configHostName = first(computed, 'hostname')
    const host =
      overrides.hostName ??
      (configHostName === undefined ? alias : configHostName.replace(/%([%h])/g, (_m, t: string) => (t === '%' ? '%' : alias)))
    const port = overrides.port ?? parsePort(first(computed, 'port'), {file, path: `Host ${alias} > Port`}) ?? 22
    const user = overrides.user ?? first(computed, 'user') ?? input.localUser
    const ctx: TokenContext = {home: input.home, localUser: input.localUser, host, alias, user, port}

    const configIds = all(computed, 'identityfile').filter((f) => f.toLowerCase() !== 'none')
    let identitySource: readonly string[] = overrides.identityFiles ?? (configIds.length > 0 ? configIds : (fallbacks.identityFiles ?? []))
    const identityFilesAreDefaults = identitySource.length === 0
    if (identityFilesAreDefaults) identitySource = DEFAULT_IDENTITY_NAMES.map((n) => `~/.ssh/${n}`)
    const identityFiles = identitySource.map((f) => expandPath(f, ctx, {file, directive: 'IdentityFile'}))

    const configKnown = all(computed, 'userknownhostsfile').flatMap((v) => v.split(/\s+/)).filter((v) => v !== '')
    const knownSource: readonly string[] =
      overrides.knownHostsFiles ??
      (configKnown.length > 0 ? configKnown : (fallbacks.knownHostsFiles ?? ['~/.ssh/known_hosts', '~/.ssh/known_hosts2']))
    const knownHostsFiles = knownSource.map((f) => expandPath(f, ctx, {file, directive: 'UserKnownHostsFile'}))

    const agent = first(computed, 'identityagent')
    return {
      alias,
      host,
      port,
      user,
      identityFiles,
      identityFilesAreDefaults,
      identitiesOnly: first(computed, 'identitiesonly')?.toLowerCase() === 'yes',
      identityAgent:
        agent === undefined || agent === 'SSH_AUTH_SOCK'
          ? undefined
          : agent.toLowerCase() === 'none'
            ? 'none'
            : expandPath(agent, ctx, {file, directive: 'IdentityAgent'}),
      knownHostsFiles,
      connectTimeoutMs: seconds(first(computed, 'connecttimeout')),
      keepaliveIntervalMs: seconds(first(computed, 'serveraliveinterval')),
      keepaliveCountMax: first(computed, 'serveralivecountmax') === undefined ? undefined : Number(first(computed, 'serveralivecountmax')),
    }
  }

  // Jump hosts are resolved through ssh config like any host (OpenSSH runs a nested ssh for
  // them). They fall back to the node's explicit key and known_hosts files, since a homelab
  // usually reaches its bastion with the same key.
  const hopFallbacks = {identityFiles: explicit.identityFiles, knownHostsFiles: explicit.knownHostsFiles}
  const resolveJumps = (specs: string[] | undefined, seen: string[], path: string): SshEndpoint[] => {
    if (specs === undefined || specs.length === 0 || (specs.length === 1 && specs[0]!.toLowerCase() === 'none')) return []
    const hops: SshEndpoint[] = []
    for (const spec of specs) {
      const jump = parseJumpSpec(spec, {file, path})
      if (seen.includes(jump.host) || seen.length >= MAX_JUMP_DEPTH) {
        throw new ConfigError(`ProxyJump loop or chain too long at ${jump.host} (${[...seen, jump.host].join(' -> ')})`, {
          file,
          path,
          hint: 'check the ProxyJump settings of these hosts in your ssh config',
        })
      }
      const computed = lookup(jump.host)
      const own = splitJumps(first(computed, 'proxyjump'))
      hops.push(...resolveJumps(own, [...seen, jump.host], `Host ${jump.host} > ProxyJump`))
      hops.push(endpoint(jump.host, computed, {user: jump.user, port: jump.port}, hopFallbacks, path))
    }
    return hops
  }

  const computed = lookup(input.host)
  const target = endpoint(
    input.host,
    computed,
    {
      hostName: explicit.hostName,
      user: explicit.user,
      port: parsePort(explicit.port, {path: 'ssh.port'}),
      identityFiles: explicit.identityFiles,
      knownHostsFiles: explicit.knownHostsFiles,
    },
    {},
    `Host ${input.host}`,
  )
  const jumpSpecs = splitJumps(explicit.proxyJump) ?? splitJumps(first(computed, 'proxyjump'))
  const jumpPath = explicit.proxyJump === undefined ? `Host ${input.host} > ProxyJump` : 'ssh.proxyJump'
  return {...target, proxyJump: resolveJumps(jumpSpecs, [input.host], jumpPath)}
}
