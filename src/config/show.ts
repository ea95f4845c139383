/**
 * The effective configuration, as `homelab config show` prints it: every setting of the cluster
 * file with the defaults filled in, each node's SSH settings as they will be used (homelab.yaml
 * over ~/.ssh/config over OpenSSH's defaults), the kubeconfig and context, and for every value
 * where it came from. Offline and read-only: nothing is dialled, the kubeconfig is only read for
 * its current-context, and no credential is ever part of the result.
 */
import {readFile} from 'node:fs/promises'
import path from 'node:path'

import {parse} from 'yaml'

import {formatDuration} from '../duration.js'
import {resolveSshTarget, type ResolvedSshTarget} from '../transport/ssh-config.js'
import {configSearchPlaces, loadConfig, type ConfigPlace} from './load.js'
import {configJsonSchema} from './schema-json.js'
import type {HomelabConfig} from './schema.js'

/** Where a value came from. */
export type SettingSource = 'file' | 'default' | '~/.ssh/config' | 'flag' | 'env' | 'kubeconfig'

export interface Setting {
  /** `ssh.connectTimeout`, `nodes[1].ssh.port`. */
  path: string
  /** As the file would write it: durations as `10s`, paths absolute; secrets masked. */
  value: unknown
  source: SettingSource
  /** More on the source: `ssh.user` (a node's value from the file's defaults), `$KUBECONFIG`, `k3s`. */
  detail?: string
}

export interface EffectiveConfig {
  file: string
  /** How the file was found: --config, $HOMELAB_CONFIG, the current directory, or XDG. */
  fileSource: ConfigPlace['source']
  settings: Setting[]
}

export interface ShowOptions {
  configPath?: string
  kubeconfig?: string
  context?: string
  env: Readonly<Record<string, string | undefined>>
  cwd: string
  home: string
  localUser: string
}

type Json = Record<string, unknown>

const MASK = '********'
// Keys whose values are secrets wherever they appear.
const SECRET_KEY = /(?:token|password|passphrase|secret|apikey|api_key|authorization)$/i
// Where a URL's path itself is a credential (webhook URLs: Slack, Discord, ntfy topics).
const SECRET_URL_PATHS = /^notify\b|webhook/i

/**
 * A value fit to print: secrets masked. A key that names a secret is masked whole; a URL keeps
 * its scheme and host but loses its password and query values, and, under `notify` (webhooks
 * carry their token in the path), its path.
 */
export function maskSecret(settingPath: string, value: unknown): unknown {
  const key = settingPath.split(/[.[\]]/).filter(Boolean).at(-1) ?? ''
  if (SECRET_KEY.test(key) && value !== undefined && value !== '') return MASK
  if (typeof value !== 'string' || !/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return value
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return value
  }
  if (url.password) url.password = MASK
  for (const name of [...url.searchParams.keys()]) url.searchParams.set(name, MASK)
  if (SECRET_URL_PATHS.test(settingPath) && url.pathname !== '/') url.pathname = `/${MASK}`
  return url.toString().replaceAll(encodeURIComponent(MASK), MASK)
}

function has(raw: unknown, segments: ReadonlyArray<string | number>): boolean {
  let at: unknown = raw
  for (const s of segments) {
    if (at === null || typeof at !== 'object') return false
    at = (at as Record<string | number, unknown>)[s]
  }
  // `key:` with nothing after it is YAML null: not set (as the loader reads it).
  return at !== undefined && at !== null
}

const formatPath = (segments: ReadonlyArray<string | number>) =>
  segments.reduce<string>((out, s) => (typeof s === 'number' ? `${out}[${s}]` : out ? `${out}.${s}` : s), '')

/** The schema's type, without the `null` every key also allows (an empty `key:` is "not set"). */
const typeOf = (schema: Json) => (Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type)

const isDuration = (schema: Json) => Array.isArray(schema.anyOf) && JSON.stringify(schema.anyOf).includes('(?:ms|h|m|s)')

export async function effectiveConfig(options: ShowOptions): Promise<EffectiveConfig> {
  const search = {explicit: options.configPath, env: options.env, cwd: options.cwd, home: options.home}
  const {config, file} = await loadConfig({...search, checkIdentityFiles: false})
  const raw = parse(await readFile(file, 'utf8')) as unknown
  const places = configSearchPlaces(search)
  const fileSource = places.find((place) => place.path === file)?.source ?? places[0].source
  const settings: Setting[] = []
  const add = (segments: ReadonlyArray<string | number>, value: unknown, source: SettingSource, detail?: string) => {
    const at = formatPath(segments)
    settings.push({path: at, value: maskSecret(at, value), source, ...(detail ? {detail} : {})})
  }

  // The file's own settings, walked in the schema's order, so every key with a default shows.
  const walk = (schema: Json, value: unknown, segments: Array<string | number>) => {
    if (value === undefined) return
    if (typeOf(schema) === 'object' && schema.properties && value && typeof value === 'object' && !Array.isArray(value)) {
      for (const [key, child] of Object.entries(schema.properties as Record<string, Json>)) walk(child, (value as Json)[key], [...segments, key])
      return
    }
    if (typeOf(schema) === 'array' && schema.items && typeOf(schema.items as Json) === 'object' && Array.isArray(value)) {
      value.forEach((item, i) => {
        walk(schema.items as Json, item, [...segments, i])
        // A node's own settings, then how it will be reached.
        if (segments.length === 1 && segments[0] === 'nodes') settings.push(...(nodeSsh.get(i) ?? []))
      })
      return
    }
    const inFile = has(raw, segments)
    const shown = isDuration(schema) && typeof value === 'number' ? formatDuration(value) : value
    const installDefault = segments[0] === 'install' && !inFile && typeof schema.default === 'undefined'
    add(segments, shown, inFile ? 'file' : 'default', installDefault ? `${config.distribution}'s` : undefined)
  }
  const nodeSsh = await nodeSshSettings(config, options)
  const schema = configJsonSchema()
  const {kubernetes, ...rest} = config
  walk(schema, rest, [])
  // distribution: when the file names none, homelab detects it from the cluster at run time.
  const distribution = settings.find((s) => s.path === 'distribution')
  if (distribution?.source === 'default') distribution.detail = 'when not set, detected from the nodes\' kubelet versions at run time'
  settings.unshift(...(await kubernetesSettings(kubernetes, raw, options)))
  return {file, fileSource, settings}
}

/** The kubeconfig and context, by kubectl's precedence: flag, homelab.yaml, $KUBECONFIG, ~/.kube/config. */
async function kubernetesSettings(kubernetes: HomelabConfig['kubernetes'], raw: unknown, options: ShowOptions): Promise<Setting[]> {
  const out: Setting[] = []
  let kubeconfigFiles: string[]
  if (options.kubeconfig) {
    kubeconfigFiles = [path.resolve(options.cwd, options.kubeconfig)]
    out.push({path: 'kubernetes.kubeconfig', value: kubeconfigFiles[0], source: 'flag', detail: '--kubeconfig'})
  } else if (kubernetes.kubeconfig) {
    kubeconfigFiles = [kubernetes.kubeconfig]
    out.push({path: 'kubernetes.kubeconfig', value: kubernetes.kubeconfig, source: 'file'})
  } else if (options.env.KUBECONFIG) {
    kubeconfigFiles = options.env.KUBECONFIG.split(path.delimiter).filter(Boolean)
    out.push({path: 'kubernetes.kubeconfig', value: options.env.KUBECONFIG, source: 'env', detail: '$KUBECONFIG'})
  } else {
    kubeconfigFiles = [path.join(options.home, '.kube', 'config')]
    out.push({path: 'kubernetes.kubeconfig', value: kubeconfigFiles[0], source: 'default'})
  }
  if (options.context) out.push({path: 'kubernetes.context', value: options.context, source: 'flag', detail: '--context'})
  else if (has(raw, ['kubernetes', 'context'])) out.push({path: 'kubernetes.context', value: kubernetes.context, source: 'file'})
  else {
    // Only the current-context line is read; nothing else of the kubeconfig is kept.
    for (const kubeconfig of kubeconfigFiles) {
      const current = await readFile(kubeconfig, 'utf8').then((t) => (parse(t) as {'current-context'?: unknown} | null)?.['current-context'], () => undefined)
      if (typeof current === 'string' && current) {
        out.push({path: 'kubernetes.context', value: current, source: 'kubeconfig', detail: `current-context of ${kubeconfig}`})
        break
      }
    }
  }
  return out
}

/** Per node, the SSH settings a connection will use, and which of homelab.yaml, ~/.ssh/config or the defaults gave each. */
async function nodeSshSettings(config: HomelabConfig, options: ShowOptions): Promise<Map<number, Setting[]>> {
  const sshConfigPath = path.join(options.home, '.ssh', 'config')
  const sshConfigText = await readFile(sshConfigPath, 'utf8').catch(() => undefined)
  const byNode = new Map<number, Setting[]>()
  config.nodes.forEach((node, i) => {
    if (node.connection === 'local' || !node.host) return
    const out: Setting[] = []
    byNode.set(i, out)
    const own = node.ssh ?? {}
    const explicit = {
      user: own.user ?? config.ssh.user,
      port: own.port ?? config.ssh.port,
      identityFiles: (own.identityFile ?? config.ssh.identityFile) ? [(own.identityFile ?? config.ssh.identityFile) as string] : undefined,
      proxyJump: own.proxyJump ?? config.ssh.proxyJump,
      knownHostsFiles: [config.ssh.knownHosts],
    }
    const resolve = (text: string | undefined): ResolvedSshTarget =>
      resolveSshTarget({host: node.host as string, explicit, sshConfigText: text, sshConfigPath, localUser: options.localUser, home: options.home})
    const withConfig = resolve(sshConfigText)
    const without = resolve(undefined)
    const fields: Array<[string, keyof typeof own | undefined, (t: ResolvedSshTarget) => unknown]> = [
      ['address', undefined, (t) => t.host],
      ['user', 'user', (t) => t.user],
      ['port', 'port', (t) => t.port],
      ['identityFile', 'identityFile', (t) => t.identityFiles.join(', ')],
      ['proxyJump', 'proxyJump', (t) => t.proxyJump.map((hop) => `${hop.user}@${hop.host}:${hop.port}`).join(',') || 'none'],
    ]
    for (const [name, key, get] of fields) {
      const segments = ['nodes', i, 'effectiveSsh', name]
      const value = get(withConfig)
      if (key && own[key] !== undefined) out.push({path: formatPath(segments), value, source: 'file', detail: `nodes[${i}].ssh.${key}`})
      else if (key && config.ssh[key as keyof typeof config.ssh] !== undefined) out.push({path: formatPath(segments), value, source: 'file', detail: `ssh.${key}`})
      else if (JSON.stringify(value) !== JSON.stringify(get(without))) out.push({path: formatPath(segments), value, source: '~/.ssh/config', detail: `Host matching ${node.host}`})
      else out.push({path: formatPath(segments), value, source: 'default', detail: name === 'address' ? 'the node\'s host' : name === 'user' ? 'the local user' : name === 'identityFile' ? 'OpenSSH\'s default keys, and the agent' : undefined})
    }
  })
  return byNode
}
