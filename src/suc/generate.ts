/**
 * `plan generate` (and `plan apply` without --file) from request to checked Plans: parse the
 * flag syntaxes, resolve the target (a channel is resolved now and pinned unless the plans
 * follow it), build the pair, and judge it against the live nodes when a cluster is at hand.
 */
import {resolveChannel, normalizeChannelName} from '../channels.js'
import type {HomelabConfig} from '../config/schema.js'
import {ConfigError, ConnectionError, isHomelabError, UsageError} from '../errors.js'
import {apiFailure} from '../kube/api-errors.js'
import type {KubeClients} from '../kube/client.js'
import {listClusterNodes} from '../kube/nodes.js'
import {type Distribution, isVersionString, looksLikeChannel, parseVersion} from '../versions/release-version.js'
import {buildPlans, type PlanTarget, renderPlans} from './build.js'
import {checkPlansAgainstNodes, type PlanCheckResult} from './checks.js'
import {parseLabelSelector, parseTolerations, parseWindow} from './syntax.js'
import type {Plan} from './types.js'

/** When to look at the cluster: auto = if a kubeconfig works; required = must; offline = never. */
export type ClusterMode = 'auto' | 'required' | 'offline'

export interface GenerateRequest {
  /** A version (`v1.31.5+k3s1`, `-` spelling too) or a channel (`stable`, `latest`, `v1.31`). */
  to: string
  /** Write `spec.channel` (the controller follows it) instead of pinning what it says now. */
  followChannel?: boolean
  distribution?: Distribution
  namespace?: string
  namePrefix?: string
  agentConcurrency?: number
  image?: string
  imagePullSecrets?: readonly string[]
  /** `days=…,start=…,end=…,tz=…` */
  window?: string
  /** Label selector syntax. */
  serverSelector?: string
  agentSelector?: string
  cordonOnly?: boolean
  /** Each `key[=value][:Effect]`, or several separated by commas. */
  tolerations?: readonly string[]
  cluster: ClusterMode
}

export interface GenerateDeps {
  config: HomelabConfig
  /** Opens the API; may throw ConfigError when there is no kubeconfig. Called only when needed. */
  kube?: () => KubeClients
  fetch?: typeof globalThis.fetch
  signal?: AbortSignal
}

export interface GeneratedPlans {
  server: Plan
  agent: Plan
  target: PlanTarget
  /** Undefined when the cluster was not asked. */
  check?: PlanCheckResult
  /** Why the cluster was not asked, when it was not. */
  clusterSkipped?: string
  warnings: string[]
  yaml: string
}

/** The target from `--to`: a version as given, or a channel resolved through the channel server. */
export async function resolvePlanTarget(deps: GenerateDeps, request: Pick<GenerateRequest, 'to' | 'followChannel' | 'distribution'>): Promise<PlanTarget> {
  const distribution = request.distribution ?? deps.config.distribution
  const to = request.to.trim()
  if (isVersionString(to)) {
    if (request.followChannel) {
      throw new UsageError(`--follow-channel needs a channel, but --to ${to} is a version`, {hint: 'pass a channel (--to stable, --to v1.31) or drop --follow-channel to pin the version'})
    }
    return {kind: 'version', version: parseVersion(to, distribution)}
  }
  if (!looksLikeChannel(to)) parseVersion(to, distribution) // throws the explanation
  const channel = normalizeChannelName(to)
  const base = deps.config.install.channelUrl
  const resolved = await resolveChannel(channel, {baseUrl: base, distribution, fetch: deps.fetch, signal: deps.signal})
  if (request.followChannel) return {kind: 'channel', channel, url: `${base.replace(/\/+$/, '')}/${channel}`, resolved}
  return {kind: 'version', version: resolved, channel}
}

export async function generatePlans(deps: GenerateDeps, request: GenerateRequest): Promise<GeneratedPlans> {
  const {config} = deps
  const distribution = request.distribution ?? config.distribution
  // Flag syntax first: a typo should not cost a round trip to the channel server.
  const window = request.window ? parseWindow(request.window) : undefined
  const serverSelector = request.serverSelector ? parseLabelSelector(request.serverSelector, '--server-selector') : undefined
  const agentSelector = request.agentSelector ? parseLabelSelector(request.agentSelector, '--agent-selector') : undefined
  const tolerations = (request.tolerations ?? []).flatMap((t) => parseTolerations(t))

  const target = await resolvePlanTarget(deps, request)
  const built = buildPlans({
    distribution,
    target,
    namespace: request.namespace,
    namePrefix: request.namePrefix,
    agentConcurrency: request.agentConcurrency ?? config.upgrade.agentConcurrency,
    drain: config.upgrade.drain,
    cordonOnly: request.cordonOnly,
    image: request.image,
    imagePullSecrets: request.imagePullSecrets,
    window,
    serverSelector,
    agentSelector,
    tolerations,
  })
  const warnings = [...built.warnings]
  const version = target.kind === 'version' ? target.version : target.resolved

  let check: PlanCheckResult | undefined
  let clusterSkipped: string | undefined
  if (request.cluster === 'offline') {
    clusterSkipped = '--offline: the plans were not checked against the cluster\'s versions'
  } else {
    const nodes = await readNodes(deps, request.cluster)
    if (typeof nodes === 'string') clusterSkipped = nodes
    else check = checkPlansAgainstNodes([built.server, built.agent], nodes, {targetOf: () => version, exclusive: true})
  }
  if (check) warnings.push(...check.warnings)
  if (clusterSkipped) warnings.push(clusterSkipped)

  const what = target.kind === 'version' ? `${version.format()}${target.channel ? ` (channel ${target.channel} today)` : ''}` : `channel ${target.url} (today ${version.format()})`
  const yaml = renderPlans([built.server, built.agent], [
    `system-upgrade-controller plans for ${distribution} ${what}, written by homelab k8s plan generate.`,
    `Apply: homelab k8s plan apply --file <this file>    Follow: homelab k8s plan status --wait`,
  ])
  return {server: built.server, agent: built.agent, target, check, clusterSkipped, warnings, yaml}
}

/** The live nodes, or (in auto mode) why they could not be read. */
async function readNodes(deps: GenerateDeps, mode: ClusterMode) {
  let kube: KubeClients
  try {
    if (!deps.kube) throw new ConfigError('no kubeconfig', {hint: 'pass --kubeconfig'})
    kube = deps.kube()
  } catch (error) {
    if (mode === 'required' || !(error instanceof ConfigError)) throw error
    return `no usable kubeconfig (${error.message}): the plans were not checked against the cluster's versions (--check-cluster makes that an error)`
  }
  try {
    return await bounded(listClusterNodes(kube, deps.signal), NODES_TIMEOUT_MS, `no answer from ${kube.server} within ${NODES_TIMEOUT_MS / 1000}s`)
  } catch (error) {
    if (isHomelabError(error)) throw error
    const failure = apiFailure(error)
    const why = `${failure.code ? `${failure.code}: ` : ''}${failure.message}`
    if (mode === 'required') {
      throw new ConnectionError(`cannot read the nodes from ${kube.server}: ${why}`, {cause: error, hint: 'check the kubeconfig and the cluster, or pass --offline to generate without the version checks'})
    }
    return `cannot read the nodes from ${kube.server} (${why}): the plans were not checked against the cluster's versions (--check-cluster makes that an error)`
  }
}

const NODES_TIMEOUT_MS = 15_000

function bounded<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}
