/**
 * Registry mode's pre-flight: does every node's registry mirror hold every image of the target
 * release? Asked as containerd will ask it (`HEAD <endpoint>/v2/<name>/manifests/<tag>`, the
 * same Accept types, the name after the mirror's rewrites), before anything changes, so a
 * missing image is a refusal with the copy commands rather than pods in ImagePullBackOff after
 * a "successful" upgrade.
 *
 * The requests are made from the machine running homelab, not from the nodes: it needs no curl
 * (nor anything else) on a node, and one connection pool serves every node's mirror, so ten
 * nodes sharing one mirror cost one request per image, not ten. What is asked still is what each
 * node would ask: the endpoints, credentials and CA path come from that node's own
 * registries.yaml, and the CA (and client certificate) files are read from that node.
 * What this cannot see: a route or firewall between a node and its mirror that the CLI machine
 * does not share.
 */
import {createHash} from 'node:crypto'
import {Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders} from 'node:http'
import {Agent as HttpsAgent, request as httpsRequest} from 'node:https'

import {AbortedError, PreflightError} from '../errors.js'
import {settleWithConcurrency} from '../saga/concurrency.js'
import type {ImageRef} from './image-list.js'
import {mirrorFor, parseRegistriesYaml, rewriteRepository, type RegistriesConfig, type RegistryEndpoint} from './registries-yaml.js'

/** What containerd accepts for a manifest: an OCI index or manifest, a docker manifest list or manifest. */
export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ')

export interface RegistryCheckNode {
  node: string
  /** The file's content, or undefined when the node has none (it pulls from upstream). */
  registriesYaml: string | undefined
  /** Where the file is on the node, for messages. */
  registriesPath: string
  /** The node runs with `--disable-default-registry-endpoint`. */
  disableDefaultEndpoint?: boolean
}

export interface RegistryCheckOptions {
  images: readonly ImageRef[]
  nodes: readonly RegistryCheckNode[]
  /** Reads a file on a node (the CA, client certificate and key that registries.yaml names). */
  readNodeFile: (node: string, path: string) => Promise<string>
  /** Per request (default 10 s). */
  timeoutMs?: number
  /** Requests in flight at most (default 8). */
  concurrency?: number
  signal?: AbortSignal
}

export interface MissingImage {
  /** The image as the release lists it: `docker.io/rancher/mirrored-pause:3.6`. */
  image: string
  /** The mirror it is missing from: `https://registry.example.com:5000`. */
  endpoint: string
  /** The name and reference asked for, after rewrites: `mirrorproject/mirrored-pause:3.6`. */
  asked: string
  /** A `skopeo copy` that puts it there (no credentials in it). */
  copyCommand: string
  nodes: string[]
}

export interface UnreachableEndpoint {
  endpoint: string
  error: string
  nodes: string[]
  /** How many images could not be checked because of it. */
  images: number
}

export interface RegistryCheckResult {
  missing: MissingImage[]
  /** Mirrors that gave no answer about images no other mirror of theirs holds. */
  unreachable: UnreachableEndpoint[]
  /**
   * Images whose registry has no mirror entry (nor `*`) on nodes that have mirrors: containerd
   * pulls them from their upstream registry, so they are not asked here. Not an error: in a true
   * air gap such a pull fails, which the caller may choose to refuse.
   */
  unmirrored: Array<{image: string; nodes: string[]}>
  /** Nodes without a registries.yaml, or with no mirror in it: not in registry mode. */
  nodesWithoutMirrors: string[]
  warnings: string[]
  /** Distinct manifest questions asked (each endpoint and image once, whatever the number of nodes). */
  checked: number
}

type Outcome = {kind: 'present'} | {kind: 'missing'} | {kind: 'error'; error: string}

/** Everything a request to one endpoint depends on; nodes whose files agree share one. */
interface Target {
  key: string
  endpoint: RegistryEndpoint
  source: string
  /** `Basic …`, when the node's config has credentials for the endpoint. */
  basic?: string
  tls: {ca?: string; cert?: string; key?: string; rejectUnauthorized: boolean}
  agents: Map<string, HttpAgent>
  /** The endpoint answered a Basic challenge once: send the credentials straight away. */
  basicKnown: boolean
}

const DEFAULT_TIMEOUT_MS = 10_000
const DEFAULT_CONCURRENCY = 8
const MAX_BODY = 64 * 1024

/** Asks each node's mirrors for each image; never throws for an answer, only for a malformed registries.yaml or cancellation. */
export async function checkRegistryImages(options: RegistryCheckOptions): Promise<RegistryCheckResult> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY
  const warnings = new Set<string>()
  const secrets = new Set<string>()
  const targets = new Map<string, Target>()
  const fileReads = new Map<string, Promise<string>>()
  const nodesWithoutMirrors: string[] = []
  const unmirrored = new Map<string, Set<string>>()
  const pending: Array<{node: string; image: ImageRef; targets: Array<Promise<Target | {error: string; endpoint: string}>>}> = []

  const readOnce = (node: string, path: string): Promise<string> => {
    const key = `${node}\0${path}`
    if (!fileReads.has(key)) fileReads.set(key, options.readNodeFile(node, path))
    return fileReads.get(key)!
  }

  for (const n of options.nodes) {
    if (n.registriesYaml === undefined) {
      nodesWithoutMirrors.push(n.node)
      continue
    }
    const config = parseRegistriesYaml(n.registriesYaml, `${n.node}:${n.registriesPath}`)
    collectSecrets(config, secrets)
    for (const key of config.ignoredKeys) warnings.add(`${config.source}: k3s ignores ${key}`)
    const nodeTargets = new Map<string, Promise<Target | {error: string; endpoint: string}>>()
    let mirrored = false
    for (const image of options.images) {
      const match = mirrorFor(config, image.registry, {disableDefaultEndpoint: n.disableDefaultEndpoint})
      const mirrors = match?.endpoints.filter((e) => !e.isDefault) ?? []
      if (mirrors.length === 0) {
        if (!unmirrored.has(image.name)) unmirrored.set(image.name, new Set())
        unmirrored.get(image.name)!.add(n.node)
        continue
      }
      mirrored = true
      const resolving = mirrors.map((endpoint) => {
        if (!nodeTargets.has(endpoint.url)) nodeTargets.set(endpoint.url, resolveTarget(n.node, config, endpoint, readOnce, targets, warnings))
        return nodeTargets.get(endpoint.url)!
      })
      pending.push({node: n.node, image, targets: resolving})
    }
    if (!mirrored) nodesWithoutMirrors.push(n.node)
  }
  // Every node's CA files are read at once, not one node after the other.
  const tasks = await Promise.all(pending.map(async (p) => ({...p, targets: await Promise.all(p.targets)})))

  const probes = new Map<string, Promise<Outcome>>()
  const probeOnce = (target: Target, image: ImageRef): Promise<Outcome> => {
    const repository = rewriteRepository(target.endpoint.rewrite, image.repository)
    const key = `${target.key}\0${image.registry}/${repository}\0${image.reference}`
    if (!probes.has(key)) probes.set(key, probe(target, image, repository, {timeoutMs, concurrency, signal: options.signal}))
    return probes.get(key)!
  }

  const missing = new Map<string, MissingImage>()
  const unreachable = new Map<string, {endpoint: string; error: string; nodes: Set<string>; images: Set<string>}>()
  const failed = (endpoint: string, error: string, node: string, image: string): void => {
    const key = `${endpoint}\0${error}`
    const entry = unreachable.get(key) ?? {endpoint, error, nodes: new Set(), images: new Set()}
    entry.nodes.add(node)
    entry.images.add(image)
    unreachable.set(key, entry)
  }

  try {
    const settled = await settleWithConcurrency(tasks, concurrency, async (task) => {
      // As containerd: the mirrors in order; the first that has the image is the one pulled from.
      const errors: Array<{endpoint: string; error: string}> = []
      let absentAt: Target | undefined
      for (const target of task.targets) {
        if (options.signal?.aborted) throw new AbortedError('cancelled while asking the registry mirrors')
        if (!('key' in target)) {
          errors.push(target)
          continue
        }
        const outcome = await probeOnce(target, task.image)
        if (outcome.kind === 'present') {
          for (const e of errors) warnings.add(`${e.endpoint}: ${e.error} (on ${task.node}; containerd goes on to its next mirror, which answers)`)
          return
        }
        if (outcome.kind === 'missing') absentAt ??= target
        else errors.push({endpoint: target.endpoint.display, error: outcome.error})
      }
      for (const e of errors) failed(e.endpoint, e.error, task.node, task.image.name)
      if (absentAt) addMissing(missing, absentAt, task.image, task.node)
    })
    const aborted = settled.find((s) => s.status === 'rejected')
    if (aborted) throw (aborted as PromiseRejectedResult).reason
  } finally {
    for (const target of targets.values()) for (const agent of target.agents.values()) agent.destroy()
  }

  const mask = (text: string): string => [...secrets].reduce((t, secret) => t.split(secret).join('***'), text)
  // Answers arrive in any order; results are in the order of the image list and the nodes.
  const imageOrder = new Map(options.images.map((image, i) => [image.name, i]))
  const nodeOrder = new Map(options.nodes.map((n, i) => [n.node, i]))
  const byNode = (nodes: Iterable<string>): string[] => [...nodes].sort((a, b) => nodeOrder.get(a)! - nodeOrder.get(b)!)
  return {
    missing: [...missing.values()]
      .map((m) => ({...m, nodes: byNode(m.nodes)}))
      .sort((a, b) => a.endpoint.localeCompare(b.endpoint) || imageOrder.get(a.image)! - imageOrder.get(b.image)!),
    unreachable: [...unreachable.values()].map((u) => ({endpoint: u.endpoint, error: mask(u.error), nodes: byNode(u.nodes), images: u.images.size})),
    unmirrored: [...unmirrored].map(([image, nodes]) => ({image, nodes: [...nodes]})),
    nodesWithoutMirrors,
    warnings: [...warnings].map(mask),
    checked: probes.size,
  }
}

/**
 * The refusal for a check's result, or undefined when every mirrored image is there. Missing
 * images come first (they have a fix to copy); mirrors that did not answer refuse too, since
 * what they hold is unknown.
 */
export function registryCheckError(result: RegistryCheckResult): PreflightError | undefined {
  if (result.missing.length > 0) return new MissingImagesError(result.missing, result.unreachable)
  if (result.unreachable.length > 0) return new MirrorUnreachableError(result.unreachable)
  return undefined
}

/** Images of the target release that a node's registry mirror does not hold. Exit 3: nothing was changed. */
export class MissingImagesError extends PreflightError {
  readonly missing: MissingImage[]

  constructor(missing: MissingImage[], unreachable: UnreachableEndpoint[] = []) {
    const byEndpoint = groupBy(missing, (m) => m.endpoint)
    const lines = [`${missing.length} image${missing.length === 1 ? '' : 's'} of the target release ${missing.length === 1 ? 'is' : 'are'} missing from the registry mirror:`]
    for (const [endpoint, images] of byEndpoint) {
      const nodes = [...new Set(images.flatMap((m) => m.nodes))]
      lines.push(`  ${endpoint} (${plural('node', nodes)} ${nodes.join(', ')}):`)
      for (const m of images) {
        const asked = m.asked === m.image.slice(m.image.indexOf('/') + 1) ? '' : ` (asked as ${m.asked})`
        const only = m.nodes.length === nodes.length ? '' : ` (on ${m.nodes.join(', ')})`
        lines.push(`    ${m.image}${asked}${only}`)
      }
    }
    for (const u of unreachable) lines.push(`  and ${u.endpoint} could not be asked: ${u.error}`)
    super(lines.join('\n'), {hint: missing.map((m) => m.copyCommand).join('\n')})
    this.missing = missing
  }
}

/** A mirror gave no usable answer (connection, TLS, credentials): what it holds is unknown. */
export class MirrorUnreachableError extends PreflightError {
  readonly unreachable: UnreachableEndpoint[]

  constructor(unreachable: UnreachableEndpoint[]) {
    const lines = unreachable.map((u) => `${u.endpoint} (${plural('node', u.nodes)} ${u.nodes.join(', ')}): ${u.error}; ${u.images} image${u.images === 1 ? '' : 's'} not checked`)
    super(unreachable.length === 1 ? `the registry mirror could not be asked for the release's images: ${lines[0]}` : `registry mirrors could not be asked for the release's images:\n  ${lines.join('\n  ')}`, {
      hint: "check that the mirror is up and reachable from this machine, and that registries.yaml's CA and credentials for it are right; or set install.images to say how the images arrive",
    })
    this.unreachable = unreachable
  }
}

function plural(word: string, items: readonly unknown[]): string {
  return items.length === 1 ? word : `${word}s`
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>()
  for (const item of items) groups.set(key(item), [...(groups.get(key(item)) ?? []), item])
  return groups
}

function addMissing(missing: Map<string, MissingImage>, target: Target, image: ImageRef, node: string): void {
  const repository = rewriteRepository(target.endpoint.rewrite, image.repository)
  const key = `${target.endpoint.display}\0${image.name}`
  const entry = missing.get(key)
  if (entry) {
    if (!entry.nodes.includes(node)) entry.nodes.push(node)
    return
  }
  const asked = `${repository}${image.digest ? `@${image.digest}` : `:${image.tag}`}`
  missing.set(key, {image: image.name, endpoint: target.endpoint.display, asked, copyCommand: copyCommand(target, image, repository), nodes: [node]})
}

/**
 * `skopeo copy --all` (every architecture of the index, as containerd pulls by the index) to the
 * docker reference of the mirror's path. An image pinned by digest is copied by its digest alone,
 * digest kept (skopeo takes no reference with both a tag and a digest; containerd asks by digest).
 */
function copyCommand(target: Target, image: ImageRef, repository: string): string {
  const url = new URL(target.endpoint.url)
  // `/v2` is the API root, not part of a name; an override path such as /v2/proxy adds `proxy/`.
  const prefix = url.pathname.replace(/^\/v2(\/|$)/, '/').replace(/^\/+|\/+$/g, '')
  const reference = image.digest ? `@${image.digest}` : `:${image.tag}`
  const source = `${image.registry}/${image.repository}${reference}`
  const destination = `${url.host}/${prefix ? `${prefix}/` : ''}${repository}${reference}`
  const flags = ['--all', ...(image.digest ? ['--preserve-digests'] : []), ...(url.protocol === 'http:' || !target.tls.rejectUnauthorized ? ['--dest-tls-verify=false'] : [])]
  return `skopeo copy ${flags.join(' ')} docker://${source} docker://${destination}`
}

function collectSecrets(config: RegistriesConfig, secrets: Set<string>): void {
  for (const c of Object.values(config.configs)) {
    for (const secret of [c.auth?.password, c.auth?.auth, c.auth?.identityToken]) if (secret) secrets.add(secret)
    if (c.auth?.username && c.auth.password) secrets.add(Buffer.from(`${c.auth.username}:${c.auth.password}`).toString('base64'))
  }
}

async function resolveTarget(
  node: string,
  config: RegistriesConfig,
  endpoint: RegistryEndpoint,
  read: (node: string, path: string) => Promise<string>,
  targets: Map<string, Target>,
  warnings: Set<string>,
): Promise<Target | {error: string; endpoint: string}> {
  const {auth, tls} = endpoint.config
  const tlsFiles: {ca?: string; cert?: string; key?: string} = {}
  if (endpoint.url.startsWith('https:')) {
    for (const [field, path] of [['ca', tls?.caFile], ['cert', tls?.certFile], ['key', tls?.keyFile]] as const) {
      if (!path) continue
      try {
        tlsFiles[field] = await read(node, path)
      } catch (error) {
        return {endpoint: endpoint.display, error: `cannot read ${path} on ${node} (tls of ${endpoint.host} in ${config.source}): ${(error as Error).message}`}
      }
    }
    if (tls?.insecureSkipVerify) warnings.add(`${endpoint.display}: its TLS certificate is not verified, because ${config.source} sets insecure_skip_verify: true for ${endpoint.host}`)
  }
  if (auth?.identityToken && !auth.username) warnings.add(`${endpoint.display}: identity_token credentials (${config.source}) are not used by this check; asked without them`)
  const basic = auth?.auth ? `Basic ${auth.auth}` : auth?.username !== undefined ? `Basic ${Buffer.from(`${auth.username}:${auth.password ?? ''}`).toString('base64')}` : undefined
  const material = JSON.stringify([endpoint.url, endpoint.rewrite, basic, tlsFiles, tls?.insecureSkipVerify ?? false])
  const key = createHash('sha256').update(material).digest('hex')
  const known = targets.get(key)
  if (known) return known
  const target: Target = {key, endpoint, source: config.source, basic, tls: {...tlsFiles, rejectUnauthorized: !tls?.insecureSkipVerify}, agents: new Map(), basicKnown: false}
  targets.set(key, target)
  return target
}

interface Answer {
  status: number
  headers: IncomingHttpHeaders
  body: string
}

interface RequestContext {
  timeoutMs: number
  concurrency: number
  signal?: AbortSignal
}

async function probe(target: Target, image: ImageRef, repository: string, context: RequestContext): Promise<Outcome> {
  // `ns` tells a mirror which registry the name belongs to, as containerd sends it.
  const url = new URL(`${target.endpoint.url}/${repository}/manifests/${image.reference}`)
  url.searchParams.set('ns', image.registry)
  const ask = (authorization?: string) => send(target, url, 'HEAD', {Accept: MANIFEST_ACCEPT, ...(authorization && {Authorization: authorization})}, context)
  try {
    let answer = await ask(target.basicKnown ? target.basic : undefined)
    if (answer.status === 401) {
      const challenge = parseChallenge(answer.headers['www-authenticate'])
      if (challenge?.scheme === 'bearer') {
        const token = await fetchToken(target, challenge.params, `repository:${repository}:pull`, context)
        if (typeof token !== 'string') return token
        answer = await ask(`Bearer ${token}`)
      } else if (challenge?.scheme === 'basic' && target.basic) {
        answer = await ask(target.basic)
        if (answer.status !== 401) target.basicKnown = true
      } else if (!target.basic) {
        return {kind: 'error', error: `asks for credentials and ${target.source} has none for ${target.endpoint.host}`}
      }
    }
    if (answer.status === 200) return {kind: 'present'}
    if (answer.status === 404) return {kind: 'missing'}
    if (answer.status === 401) return {kind: 'error', error: `refused the credentials of ${target.endpoint.host} in ${target.source} (401)`}
    if (answer.status === 403) return {kind: 'error', error: `denied access to ${repository} (403)`}
    return {kind: 'error', error: `answered ${answer.status} for ${repository}:${image.reference}`}
  } catch (error) {
    if (error instanceof AbortedError) throw error
    return {kind: 'error', error: (error as Error).message}
  }
}

/** The registry's token service (`WWW-Authenticate: Bearer realm=…,service=…,scope=…`), with the node's Basic credentials. */
async function fetchToken(target: Target, params: Record<string, string>, scope: string, context: RequestContext): Promise<string | Outcome> {
  let realm: URL
  try {
    realm = new URL(params.realm ?? '')
  } catch {
    return {kind: 'error', error: `sent a Bearer challenge without a usable realm (${params.realm ?? 'none'})`}
  }
  if (realm.protocol !== 'https:' && realm.protocol !== 'http:') return {kind: 'error', error: `names a token realm that is not http(s): ${realm.origin}`}
  if (params.service) realm.searchParams.set('service', params.service)
  realm.searchParams.set('scope', params.scope ?? scope)
  // Credentials go to the endpoint's own origin, or over TLS: never in clear text to another host.
  const sameOrigin = realm.origin === new URL(target.endpoint.url).origin
  const authorization = target.basic && (sameOrigin || realm.protocol === 'https:') ? target.basic : undefined
  const answer = await send(target, realm, 'GET', {Accept: 'application/json', ...(authorization && {Authorization: authorization})}, context)
  if (answer.status === 401 || answer.status === 403) return {kind: 'error', error: `its token service ${realm.origin} refused the credentials of ${target.endpoint.host} in ${target.source} (${answer.status})`}
  if (answer.status !== 200) return {kind: 'error', error: `its token service ${realm.origin} answered ${answer.status}`}
  try {
    const body = JSON.parse(answer.body) as {token?: unknown; access_token?: unknown}
    const token = typeof body.token === 'string' && body.token ? body.token : body.access_token
    if (typeof token === 'string' && token) return token
  } catch {
    // falls through: not JSON
  }
  return {kind: 'error', error: `its token service ${realm.origin} answered without a token`}
}

function parseChallenge(header: string | string[] | undefined): {scheme: string; params: Record<string, string>} | undefined {
  const value = Array.isArray(header) ? header[0] : header
  const m = value && /^\s*(\w+)\s*(.*)$/.exec(value)
  if (!m) return undefined
  const params: Record<string, string> = {}
  for (const p of m[2]!.matchAll(/(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))/g)) params[p[1]!.toLowerCase()] = p[2] ?? p[3]!
  return {scheme: m[1]!.toLowerCase(), params}
}

/** One request through the target's pool, with a bounded time and a bounded body. */
function send(target: Target, url: URL, method: string, headers: Record<string, string>, context: RequestContext): Promise<Answer> {
  const https = url.protocol === 'https:'
  const agentKey = `${url.protocol}//${url.host}`
  let agent = target.agents.get(agentKey)
  if (!agent) {
    agent = https ? new HttpsAgent({keepAlive: true, maxSockets: context.concurrency, ...target.tls}) : new HttpAgent({keepAlive: true, maxSockets: context.concurrency})
    target.agents.set(agentKey, agent)
  }
  const timeout = AbortSignal.timeout(context.timeoutMs)
  const signal = context.signal ? AbortSignal.any([context.signal, timeout]) : timeout
  return new Promise<Answer>((resolve, reject) => {
    const fail = (error: Error): void => {
      if (context.signal?.aborted) reject(new AbortedError('cancelled while asking the registry mirrors'))
      else if (timeout.aborted) reject(new Error(`no answer within ${context.timeoutMs / 1000} s`))
      else reject(new Error(describeNetworkError(error)))
    }
    const req = (https ? httpsRequest : httpRequest)(url, {method, headers: {'User-Agent': 'homelab', ...headers}, agent, signal}, (res) => {
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size <= MAX_BODY) chunks.push(chunk)
      })
      res.on('end', () => resolve({status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8')}))
      res.on('error', fail)
    })
    req.on('error', fail)
    req.end()
  })
}

function describeNetworkError(error: Error): string {
  const code = (error as {code?: string}).code
  if (code === 'ECONNREFUSED') return 'connection refused'
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'host name not found'
  if (code && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)) return `TLS: ${error.message} (check the ca_file in registries.yaml)`
  return error.message
}
