import {createHash} from 'node:crypto'
import {existsSync, statSync} from 'node:fs'
import type {Agent as HttpAgent} from 'node:http'
import type {Socket} from 'node:net'
import type {AgentOptions} from 'node:https'
import {createSecureContext, type SecureContext} from 'node:tls'
import {homedir} from 'node:os'
import path from 'node:path'

import {ConfigError} from '../errors.js'
import {kubeconfigPaths} from '../distributions/index.js'
import {
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  Health,
  KubeConfig,
  KubernetesObjectApi,
  PolicyV1Api,
  Watch,
} from '../bundled/kubernetes-client.js'

export interface KubeConfigSource {
  /** --kubeconfig flag. */
  kubeconfig?: string
  /** --context flag. */
  context?: string
  /** kubernetes.kubeconfig / kubernetes.context from homelab.yaml (already resolved to absolute paths). */
  fromFile?: {kubeconfig?: string; context?: string}
  env?: NodeJS.ProcessEnv
  home?: string
}

/**
 * kubectl's rules: the flag, then the cluster file, then $KUBECONFIG (a path list, merged),
 * then ~/.kube/config. The context comes from the flag, the cluster file, or current-context.
 * TLS verification cannot be switched off from a kubeconfig: a homelab tool that silently
 * trusts any API server would hand cluster-admin credentials to whoever answers.
 */
export function loadKubeConfig(source: KubeConfigSource = {}): {kubeConfig: KubeConfig; origin: string} {
  const env = source.env ?? process.env
  const home = source.home ?? homedir()
  const kubeConfig = new KubeConfig()
  const explicit = source.kubeconfig ?? source.fromFile?.kubeconfig
  let origin: string
  if (explicit) {
    if (!existsSync(explicit)) {
      throw new ConfigError(`kubeconfig ${explicit} does not exist`, {
        hint: `pass --kubeconfig with the path of your cluster's kubeconfig (a server writes it to ${kubeconfigPaths()})`,
      })
    }
    if (statSync(explicit).isDirectory()) {
      throw new ConfigError(`kubeconfig ${explicit} is a directory`, {hint: 'pass --kubeconfig with the path of the kubeconfig file inside it'})
    }
    kubeConfig.loadFromFile(explicit)
    origin = explicit
  } else if (env.KUBECONFIG) {
    const files = env.KUBECONFIG.split(path.delimiter).filter((file) => file && existsSync(file))
    if (files.length === 0) {
      throw new ConfigError(`no file named in KUBECONFIG exists (${env.KUBECONFIG})`, {
        hint: 'set KUBECONFIG to an existing kubeconfig or pass --kubeconfig',
      })
    }
    kubeConfig.loadFromFile(files[0])
    for (const file of files.slice(1)) {
      const more = new KubeConfig()
      more.loadFromFile(file)
      kubeConfig.mergeConfig(more, true)
    }
    origin = files.join(path.delimiter)
  } else {
    const fallback = path.join(home, '.kube', 'config')
    if (!existsSync(fallback)) {
      throw new ConfigError('no kubeconfig found (no --kubeconfig, no KUBECONFIG, no ~/.kube/config)', {
        hint: `copy the kubeconfig from a server (${kubeconfigPaths()}) to ~/.kube/config (set its server: address), or pass --kubeconfig`,
      })
    }
    kubeConfig.loadFromFile(fallback)
    origin = fallback
  }

  const context = source.context ?? source.fromFile?.context
  if (context) {
    if (!kubeConfig.getContextObject(context)) {
      const known = kubeConfig.getContexts().map((c) => c.name).join(', ') || 'none'
      throw new ConfigError(`context "${context}" is not in ${origin} (contexts: ${known})`, {
        hint: 'pass --context with one of the contexts listed, or set kubernetes.context in homelab.yaml',
      })
    }
    kubeConfig.setCurrentContext(context)
  }
  const cluster = kubeConfig.getCurrentCluster()
  if (!cluster) {
    throw new ConfigError(`${origin} has no current context with a cluster`, {
      hint: 'pass --context, or set current-context in the kubeconfig',
    })
  }
  if (cluster.skipTLSVerify) {
    throw new ConfigError(`cluster "${cluster.name}" in ${origin} sets insecure-skip-tls-verify`, {
      hint: `put the cluster CA in certificate-authority-data (the one in the server's kubeconfig, ${kubeconfigPaths()}) and remove insecure-skip-tls-verify`,
    })
  }
  return {kubeConfig, origin}
}

/** KubeConfig's private agent factory (client-node 1.x); a test asserts connections are reused, so a rename shows. */
type AgentFactory = (cluster: {server?: string; proxyUrl?: string} | null, options: AgentOptions) => HttpAgent

/**
 * @kubernetes/client-node 1.x makes a new agent for every request, so every API call is a new
 * TLS handshake (with the client certificate checked on both sides): at 200 nodes that was
 * seconds of the CLI's CPU. One keep-alive agent per set of TLS options lets requests to the
 * same API server share connections; options that change (a rotated client certificate from
 * an exec plugin) get their own agent, so nothing is sent with stale credentials.
 */
function reuseConnections(kubeConfig: KubeConfig): void {
  const config = kubeConfig as unknown as {createAgent: AgentFactory}
  const make = config.createAgent.bind(kubeConfig)
  const agents = new Map<string, HttpAgent>()
  config.createAgent = (cluster, options) => {
    const key = agentKey(cluster?.server, cluster?.proxyUrl, options)
    let agent = agents.get(key)
    if (!agent) {
      agent = closeIdleFirst(make(cluster, {...options, keepAlive: true, ...sharedSecureContext(cluster, options)}))
      agents.set(key, agent)
    }
    return agent
  }
}

/**
 * Node builds a TLS context (parsing the CA bundle and the client key) for every connection it
 * opens unless it is handed one, and every watch is a connection of its own: at 200 nodes that
 * was ~0.7 s of the CLI's CPU. An agent's connections share one, built from the same options as
 * Node would build each (the server's name is still checked per connection). Not through a
 * proxy: the proxy agents make TLS connections of their own.
 */
function sharedSecureContext(cluster: {server?: string; proxyUrl?: string} | null, options: AgentOptions): {secureContext?: SecureContext} {
  if (cluster?.proxyUrl || !cluster?.server?.startsWith('https:')) return {}
  return {secureContext: createSecureContext(options)}
}

/** How long a pooled API connection may sit unused: under the 5 s after which Node servers and many proxies drop idle ones. */
export const IDLE_CONNECTION_MS = 4000

/**
 * A pooled connection the server closes just as a request is sent on it fails that request
 * (ECONNRESET: seen on an eviction after a quiet minute). Node 20's agent ignores the server's
 * `Keep-Alive: timeout` hint unless the agent has a timeout of its own, and an agent timeout
 * would also apply to long quiet watches; so only a connection back in the pool gets the idle
 * limit, and loses it again when it is taken for a request.
 */
function closeIdleFirst(agent: HttpAgent): HttpAgent {
  // Typed by @types/node as returning void; Node's agent uses the boolean (false: do not pool).
  const pooled = agent as unknown as {keepSocketAlive(socket: Socket): boolean; reuseSocket(socket: Socket, request: unknown): void}
  const keepSocketAlive = pooled.keepSocketAlive.bind(agent)
  const reuseSocket = pooled.reuseSocket.bind(agent)
  pooled.keepSocketAlive = (socket) => {
    const keep = keepSocketAlive(socket)
    if (keep) socket.setTimeout(IDLE_CONNECTION_MS)
    return keep
  }
  pooled.reuseSocket = (socket, request) => {
    socket.setTimeout(0)
    reuseSocket(socket, request)
  }
  return agent
}

function agentKey(server: string | undefined, proxy: string | undefined, options: object): string {
  const hash = createHash('sha256').update(`${server}\0${proxy}\0`)
  for (const [name, value] of Object.entries(options).sort(([a], [b]) => a.localeCompare(b))) {
    if (value === undefined) continue
    hash.update(`${name}=`)
    hash.update(Buffer.isBuffer(value) ? value : String(value))
    hash.update('\0')
  }
  return hash.digest('hex')
}

/** The API clients the product uses, made once from one KubeConfig. */
export class KubeClients {
  readonly core: CoreV1Api
  readonly policy: PolicyV1Api
  readonly apps: AppsV1Api
  readonly coordination: CoordinationV1Api
  readonly customObjects: CustomObjectsApi
  readonly objects: KubernetesObjectApi
  readonly watch: Watch
  readonly health: Health

  constructor(readonly kubeConfig: KubeConfig) {
    reuseConnections(kubeConfig)
    this.core = kubeConfig.makeApiClient(CoreV1Api)
    this.policy = kubeConfig.makeApiClient(PolicyV1Api)
    this.apps = kubeConfig.makeApiClient(AppsV1Api)
    this.coordination = kubeConfig.makeApiClient(CoordinationV1Api)
    this.customObjects = kubeConfig.makeApiClient(CustomObjectsApi)
    this.objects = KubernetesObjectApi.makeApiClient(kubeConfig)
    this.watch = new Watch(kubeConfig)
    this.health = new Health(kubeConfig)
  }

  get server(): string {
    return this.kubeConfig.getCurrentCluster()?.server ?? '(unknown)'
  }
}
