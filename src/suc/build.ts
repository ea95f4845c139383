/**
 * Builds the pair of Plans the k3s and rke2 docs recommend, from the cluster file's settings and
 * the flags of `plan generate`: a server plan (control-plane nodes, one at a time, cordoned) and
 * an agent plan (the rest, drained with the same settings the SSH upgrade uses) whose `prepare`
 * step waits for the server plan. Both name the same version or the same channel, which is what
 * `prepare` needs to see the servers finished.
 */
import {stringify} from 'yaml'

import type {DrainOptions} from '../config/schema.js'
import {formatDuration} from '../duration.js'
import {UsageError} from '../errors.js'
import {CONTROL_PLANE_LABEL} from '../kube/nodes.js'
import type {Distribution, ReleaseVersion} from '../versions/release-version.js'
import {parseLabelSelector} from './syntax.js'
import {
  type ContainerSpec,
  DEFAULT_NAMESPACE,
  DEFAULT_SERVICE_ACCOUNT,
  type DrainSpec,
  type LabelSelector,
  MANAGED_BY,
  MANAGED_BY_LABEL,
  type Plan,
  PLAN_API_VERSION,
  PLAN_KIND,
  PLAN_ROLE_LABEL,
  type PlanRole,
  type PlanSpec,
  type TimeWindowSpec,
  type Toleration,
} from './types.js'

export const ETCD_LABEL = 'node-role.kubernetes.io/etcd'

/** The upgrade images; the controller adds the version (with `-`) as the tag. */
export const UPGRADE_IMAGES: Record<Distribution, string> = {
  k3s: 'rancher/k3s-upgrade',
  rke2: 'rancher/rke2-upgrade',
}

/** The controller gives each Job this long unless SYSTEM_UPGRADE_JOB_ACTIVE_DEADLINE_SECONDS says otherwise. */
export const DEFAULT_JOB_DEADLINE_MS = 600_000

/** What the plans upgrade to: a version pinned now, or a channel the controller follows. */
export type PlanTarget =
  | {kind: 'version'; version: ReleaseVersion; /** The channel it was resolved from, if any. */ channel?: string}
  | {kind: 'channel'; channel: string; url: string; /** What the channel says today (for the version checks). */ resolved: ReleaseVersion}

export interface PlanBuildOptions {
  distribution: Distribution
  target: PlanTarget
  namespace?: string
  serviceAccountName?: string
  /** Plan names are `<prefix>server` and `<prefix>agent`; default `<distribution>-`. */
  namePrefix?: string
  agentConcurrency: number
  /** The cluster file's `upgrade.drain`. */
  drain: DrainOptions
  /** Cordon agents without draining them. */
  cordonOnly?: boolean
  /** Image repository without a tag (a private registry's copy). */
  image?: string
  imagePullSecrets?: readonly string[]
  window?: TimeWindowSpec
  serverSelector?: LabelSelector
  agentSelector?: LabelSelector
  tolerations?: readonly Toleration[]
}

export interface BuiltPlans {
  server: Plan
  agent: Plan
  /** Things the user should know but that do not stop generation. */
  warnings: string[]
}

export function planNames(distribution: Distribution, namePrefix?: string): {server: string; agent: string} {
  const prefix = namePrefix ?? `${distribution}-`
  return {server: `${prefix}server`, agent: `${prefix}agent`}
}

// Plan names become part of Job names and of the node label `plan.upgrade.cattle.io/<name>`,
// whose name part may be at most 63 characters.
const PLAN_NAME_RE = /^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/

/** The docs' selectors. For rke2 an etcd-only server must not be mistaken for an agent. */
export function defaultSelectors(distribution: Distribution): Record<PlanRole, LabelSelector> {
  const server: LabelSelector = {matchExpressions: [{key: CONTROL_PLANE_LABEL, operator: 'In', values: ['true']}]}
  const agent: LabelSelector = {matchExpressions: [{key: CONTROL_PLANE_LABEL, operator: 'DoesNotExist'}]}
  if (distribution === 'rke2') agent.matchExpressions!.push({key: ETCD_LABEL, operator: 'DoesNotExist'})
  return {server, agent}
}

/** `--image` must name a repository: a tag there would pin one version whatever the plan says. */
export function checkImage(image: string): void {
  const lastPart = image.split('/').at(-1) ?? ''
  if (image.includes('@') || lastPart.includes(':')) {
    const repository = image.split('@')[0].replace(/:[^/]*$/, '')
    throw new UsageError(`--image ${image} carries a tag or digest; the controller adds the plan's version as the tag`, {
      hint: `pass the repository only, e.g. --image ${repository}`,
    })
  }
  if (image.trim() === '' || /\s/.test(image)) {
    throw new UsageError(`--image ${JSON.stringify(image)} is not an image name`, {hint: 'pass a repository such as registry.lan/rancher/k3s-upgrade'})
  }
}

function drainSpec(drain: DrainOptions): DrainSpec {
  const spec: DrainSpec = {
    timeout: formatDuration(drain.timeout),
    ignoreDaemonSets: drain.ignoreDaemonsets,
    deleteEmptydirData: drain.deleteEmptydirData,
    force: drain.force,
  }
  if (drain.gracePeriod >= 0) spec.gracePeriod = drain.gracePeriod
  if (drain.disableEviction) spec.disableEviction = true
  if (drain.skipWaitForDeleteTimeout > 0) spec.skipWaitForDeleteTimeout = drain.skipWaitForDeleteTimeout
  if (drain.podSelector.trim() !== '') spec.podSelector = parseLabelSelector(drain.podSelector, 'upgrade.drain.podSelector')
  return spec
}

export function buildPlans(options: PlanBuildOptions): BuiltPlans {
  const {distribution, target} = options
  const namespace = options.namespace ?? DEFAULT_NAMESPACE
  const serviceAccountName = options.serviceAccountName ?? DEFAULT_SERVICE_ACCOUNT
  const names = planNames(distribution, options.namePrefix)
  for (const name of [names.server, names.agent]) {
    if (!PLAN_NAME_RE.test(name)) {
      throw new UsageError(`plan name ${JSON.stringify(name)} is not a valid name`, {
        hint: '--name-prefix may use lowercase letters, digits and "-", and the name must stay within 63 characters',
      })
    }
  }
  if (!Number.isInteger(options.agentConcurrency) || options.agentConcurrency < 1) {
    throw new UsageError(`agent concurrency must be a whole number of at least 1, got ${options.agentConcurrency}`, {
      hint: 'with 0 the controller never upgrades anything; pass --agent-concurrency 1 or more',
    })
  }
  const image = options.image ?? UPGRADE_IMAGES[distribution]
  checkImage(image)
  const version = target.kind === 'version' ? target.version : target.resolved
  if (version.distribution !== distribution) {
    throw new UsageError(`${version.format()} is a ${version.distribution} version, but the plans are for ${distribution}`, {
      hint: `pass a ${distribution} version, or --distribution ${version.distribution}`,
    })
  }

  const selectors = defaultSelectors(distribution)
  const warnings: string[] = []
  const upgrade: ContainerSpec = {image}

  const common = (role: PlanRole, concurrency: number, selector: LabelSelector): {metadata: Plan['metadata']; spec: PlanSpec} => {
    // Insertion order is the order in the YAML: what a reader looks for first comes first.
    const spec: Partial<PlanSpec> = {concurrency}
    if (target.kind === 'version') spec.version = target.version.format()
    else spec.channel = target.url
    spec.serviceAccountName = serviceAccountName
    spec.nodeSelector = structuredClone(selector)
    if (options.tolerations && options.tolerations.length > 0) spec.tolerations = options.tolerations.map((t) => ({...t}))
    if (options.window) spec.window = structuredClone(options.window)
    if (options.imagePullSecrets && options.imagePullSecrets.length > 0) spec.imagePullSecrets = options.imagePullSecrets.map((name) => ({name}))
    return {
      metadata: {name: names[role], namespace, labels: {[MANAGED_BY_LABEL]: MANAGED_BY, [PLAN_ROLE_LABEL]: role}},
      spec: spec as PlanSpec,
    }
  }

  const server = common('server', 1, options.serverSelector ?? selectors.server)
  server.spec.cordon = true
  server.spec.upgrade = {...upgrade}

  const agent = common('agent', options.agentConcurrency, options.agentSelector ?? selectors.agent)
  // prepare's image takes the plan's version as its tag too, so it runs the same release.
  agent.spec.prepare = {image, args: ['prepare', names.server]}
  if (options.cordonOnly) {
    agent.spec.cordon = true
  } else {
    agent.spec.drain = drainSpec(options.drain)
    if (options.drain.timeout >= DEFAULT_JOB_DEADLINE_MS) {
      warnings.push(
        `the drain timeout (${formatDuration(options.drain.timeout)}) is not shorter than the controller's default Job deadline (${formatDuration(DEFAULT_JOB_DEADLINE_MS)}); ` +
          'raise SYSTEM_UPGRADE_JOB_ACTIVE_DEADLINE_SECONDS in the controller\'s configmap or lower upgrade.drain.timeout',
      )
    }
  }
  agent.spec.upgrade = {...upgrade}

  if (target.kind === 'channel') {
    warnings.push(
      `the plans follow ${target.url}: the controller upgrades whenever that channel moves (today ${target.resolved.format()}), and no version check runs then`,
    )
  }
  return {
    server: {apiVersion: PLAN_API_VERSION, kind: PLAN_KIND, ...server},
    agent: {apiVersion: PLAN_API_VERSION, kind: PLAN_KIND, ...agent},
    warnings,
  }
}

/**
 * Multi-document YAML, server plan first, as `kubectl apply -f` takes it. Written for YAML 1.1
 * readers, which kubectl is: there `startTime: 01:00` would be the number 60 and `on` a
 * boolean, so such strings are quoted.
 */
export function renderPlans(plans: readonly Plan[], header: readonly string[] = []): string {
  const comment = header.map((line) => `# ${line}`.trimEnd()).join('\n')
  const body = plans.map((plan) => stringify(plan, {lineWidth: 0, version: '1.1'})).join('---\n')
  return comment ? `${comment}\n${body}` : body
}
