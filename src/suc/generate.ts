/**
 * `plan generate` (and `plan apply` without --file) from request to checked Plans: parse the
 * flag syntaxes, resolve the target (a channel is resolved now and pinned unless the plans
 * follow it), read the live nodes when a cluster is at hand, build the plans their roles need
 * (an etcd plan when there are etcd-only servers), and judge them against those nodes.
 */
import {resolveChannel, normalizeChannelName} from '../channels.js'
import type {HomelabConfig} from '../config/schema.js'
import {binaryDistributionOf} from '../distributions/index.js'
import {ConfigError, ConnectionError, isHomelabError, UsageError} from '../errors.js'
import {apiFailure} from '../kube/api-errors.js'
import type {KubeClients} from '../kube/client.js'
import {type ClusterNode, listClusterNodes} from '../kube/nodes.js'
import {type Distribution, isVersionString, looksLikeChannel, parseVersion} from '../versions/release-version.js'
import {buildPlans, checkPlanNames, checkPlanOptions, type PlanBuildOptions, type PlanTarget, renderPlans} from './build.js'
import {checkPlansAgainstNodes, type PlanCheckResult} from './checks.js'
import {CONTROL_PLANE_LABEL, ETCD_LABEL, isEtcdOnly, isMasterOnly, MASTER_LABEL} from './roles.js'
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
  /**
   * No network at all (`plan generate --offline`): the cluster is not asked, whatever `cluster`
   * says, and a channel is not resolved: followed, the plans carry its URL only; pinned, refused.
   */
  offline?: boolean
}

export interface GenerateDeps {
  config: HomelabConfig
  /** Opens the API; may throw ConfigError when there is no kubeconfig. Called only when needed. */
  /** Opens the API on first use (may load the Kubernetes client then). */
  kube?: () => KubeClients | Promise<KubeClients>
  fetch?: typeof globalThis.fetch
  signal?: AbortSignal
}

export interface GeneratedPlans {
  /** In upgrade order: [etcd,] server, agent. */
  plans: Plan[]
  /** Only when the cluster has etcd-only servers. */
  etcd?: Plan
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
export async function resolvePlanTarget(deps: GenerateDeps, request: Pick<GenerateRequest, 'to' | 'followChannel' | 'distribution' | 'offline'>): Promise<PlanTarget> {
  const distribution = request.distribution ?? deps.config.distribution
  binaryDistributionOf(distribution, 'system-upgrade-controller plans')
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
  const url = `${base.replace(/\/+$/, '')}/${channel}`
  if (request.offline) {
    if (request.followChannel) return {kind: 'channel', channel, url}
    throw new UsageError(`--offline: the channel ${channel} cannot be resolved without asking ${url}`, {
      hint: 'pass a version with --to, add --follow-channel to write the channel into the plans, or drop --offline',
    })
  }
  const resolved = await resolveChannel(channel, {baseUrl: base, distribution, fetch: deps.fetch, signal: deps.signal})
  if (request.followChannel) return {kind: 'channel', channel, url, resolved}
  return {kind: 'version', version: resolved, channel}
}

export async function generatePlans(deps: GenerateDeps, request: GenerateRequest): Promise<GeneratedPlans> {
  const {config} = deps
  const distribution = request.distribution ?? config.distribution
  // Flag syntax and names first: a typo should not cost a round trip to the channel server.
  checkPlanNames({distribution, namespace: request.namespace, namePrefix: request.namePrefix, image: request.image, imagePullSecrets: request.imagePullSecrets})
  const window = request.window ? parseWindow(request.window) : undefined
  const serverSelector = request.serverSelector ? parseLabelSelector(request.serverSelector, '--server-selector') : undefined
  const agentSelector = request.agentSelector ? parseLabelSelector(request.agentSelector, '--agent-selector') : undefined
  const tolerations = (request.tolerations ?? []).flatMap((t) => parseTolerations(t))

  const target = await resolvePlanTarget(deps, request)
  const version = target.kind === 'version' ? target.version : target.resolved
  const options: PlanBuildOptions = {
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
  }
  checkPlanOptions(options)

  let nodes: ClusterNode[] | undefined
  let clusterSkipped: string | undefined
  if (request.offline || request.cluster === 'offline') {
    clusterSkipped = '--offline: the plans were not checked against the cluster\'s versions'
  } else {
    const read = await readNodes(deps, request.cluster)
    if (typeof read === 'string') clusterSkipped = read
    else nodes = read
  }
  // Which plans the cluster needs comes from its node labels; without them, the two plans of the
  // docs, whose agent plan leaves etcd nodes alone all the same.
  const etcdOnly = (nodes ?? []).filter((n) => isEtcdOnly(n.labels)).map((n) => n.name)
  const masterOnly = (nodes ?? []).filter((n) => isMasterOnly(n.labels)).map((n) => n.name)

  const built = buildPlans({...options, etcdPlan: etcdOnly.length > 0, excludeMaster: masterOnly.length > 0})
  const warnings = [...built.warnings]
  const check = nodes ? checkPlansAgainstNodes(built.plans, nodes, {targetOf: () => version, exclusive: true}) : undefined
  if (check) warnings.push(...check.warnings)
  if (clusterSkipped) warnings.push(clusterSkipped)
  if (target.kind === 'channel' && !version) warnings.push(`--offline: ${target.url} was not asked, so what it says (its version and distribution) was not checked`)
  const header: string[] = []
  if (!nodes) {
    // The default agent selector leaves etcd nodes out, so a missing etcd plan can only leave an
    // etcd-only server behind, never upgrade it as an agent; one of the user's may not.
    const fate = agentSelector ? 'by the agent plan if --agent-selector selects it' : 'by no plan (the agent plan leaves etcd nodes alone)'
    header.push(`Written without the cluster's node labels, so without an etcd plan: an etcd-only server would be upgraded ${fate}.`)
    warnings.push(`the plans were written without the cluster's node labels, so without an etcd plan: an etcd-only server (${ETCD_LABEL}, no control-plane label) would be upgraded ${fate}; generate against the cluster to add the etcd plan`)
  }
  if (built.etcd) {
    header.push(`Order: ${built.plans.map((p) => p.metadata.name).join(', then ')}; each waits in its prepare step for the one before. ${built.etcd.metadata.name} is for the etcd-only servers (${etcdOnly.join(', ')}).`)
  }
  if (masterOnly.length > 0) {
    // Servers labelled the old way: upgrading them as agents would put kubelets ahead of their API server.
    const [carry, them] = masterOnly.length === 1 ? ['carries', 'it'] : ['carry', 'them']
    warnings.push(
      `${masterOnly.join(', ')} ${carry} ${MASTER_LABEL} but neither ${CONTROL_PLANE_LABEL} nor ${ETCD_LABEL}: no plan upgrades ${them} ` +
        `(label ${them} ${CONTROL_PLANE_LABEL}=true for the server plan to take ${them})`,
    )
  }

  const what = target.kind === 'version' ? `${target.version.format()}${target.channel ? ` (channel ${target.channel} today)` : ''}` : `channel ${target.url}${version ? ` (today ${version.format()})` : ''}`
  const yaml = renderPlans(built.plans, [
    `system-upgrade-controller plans for ${distribution} ${what}, written by homelab k8s plan generate.`,
    ...header,
    `Apply: homelab k8s plan apply --file <this file>    Follow: homelab k8s plan status --wait`,
  ])
  return {plans: built.plans, etcd: built.etcd, server: built.server, agent: built.agent, target, check, clusterSkipped, warnings, yaml}
}

/** The live nodes, or (in auto mode) why they could not be read. */
async function readNodes(deps: GenerateDeps, mode: ClusterMode) {
  let kube: KubeClients
  try {
    if (!deps.kube) throw new ConfigError('no kubeconfig', {hint: 'pass --kubeconfig'})
    kube = await deps.kube()
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
