/**
 * Builds the Plans from the cluster file's settings and the flags of `plan generate`, in the
 * order they upgrade: when the cluster has etcd-only servers, an etcd plan (those, one at a
 * time, cordoned); the server plan (control-plane nodes, one at a time, cordoned, behind the
 * etcd plan if there is one); the agent plan (nodes with no server label, drained with the same
 * settings the SSH upgrade uses) whose `prepare` step waits for the server plan. Without etcd-only
 * servers that is the pair the k3s and rke2 docs recommend. All name the same version or the
 * same channel, which is what each `prepare` needs to see the plan before it finished.
 */
import {stringify} from 'yaml'

import type {DrainOptions} from '../config/schema.js'
import {BINARY_DISTRIBUTIONS, binaryDistributionOf} from '../distributions/index.js'
import {formatDuration} from '../duration.js'
import {UsageError} from '../errors.js'
import type {Distribution, ReleaseVersion} from '../versions/release-version.js'
import {checkName, DNS_LABEL_RULE, DNS_SUBDOMAIN_RULE, IMAGE_REPOSITORY_RULE} from './names.js'
import {upstreamPrepare, waitForPlanPrepare} from './prepare.js'
import {CONTROL_PLANE_LABEL, ETCD_LABEL, MASTER_LABEL} from './roles.js'
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
  PLAN_ROLES,
  type PlanRole,
  type PlanSpec,
  type TimeWindowSpec,
  type Toleration,
} from './types.js'

/** The upgrade images; the controller adds the version (with `-`) as the tag. */
export const UPGRADE_IMAGES = Object.fromEntries(BINARY_DISTRIBUTIONS.map((d) => [d.name, d.sucImage])) as Partial<Record<Distribution, string>>

/** The controller gives each Job this long unless SYSTEM_UPGRADE_JOB_ACTIVE_DEADLINE_SECONDS says otherwise. */
export const DEFAULT_JOB_DEADLINE_MS = 600_000

/** What the plans upgrade to: a version pinned now, or a channel the controller follows. */
export type PlanTarget =
  | {kind: 'version'; version: ReleaseVersion; /** The channel it was resolved from, if any. */ channel?: string}
  | {kind: 'channel'; channel: string; url: string; /** What the channel says today (for the version checks); unknown with --offline. */ resolved?: ReleaseVersion}

export interface PlanBuildOptions {
  distribution: Distribution
  target: PlanTarget
  namespace?: string
  serviceAccountName?: string
  /** Plan names are `<prefix>etcd`, `<prefix>server` and `<prefix>agent`; default `<distribution>-`. */
  namePrefix?: string
  /** Write the etcd plan and put the server plan behind it: the cluster has etcd-only servers. */
  etcdPlan?: boolean
  /** Keep nodes labelled only `node-role.kubernetes.io/master` out of the agent plan. */
  excludeMaster?: boolean
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
  /** In upgrade order: [etcd,] server, agent. */
  plans: Plan[]
  etcd?: Plan
  server: Plan
  agent: Plan
  /** Things the user should know but that do not stop generation. */
  warnings: string[]
}

export function planNames(distribution: Distribution, namePrefix?: string): Record<PlanRole, string> {
  const prefix = namePrefix ?? `${distribution}-`
  return Object.fromEntries(PLAN_ROLES.map((role) => [role, `${prefix}${role}`])) as Record<PlanRole, string>
}

/**
 * The docs' server selector, and disjoint ones around it: the etcd plan takes etcd nodes without
 * the control-plane label, the agent plan nodes with neither label (so an etcd-only server is
 * never upgraded as an agent, even when no etcd plan is written), and, when asked, without the
 * master label either.
 */
export function defaultSelectors(options: {excludeMaster?: boolean} = {}): Record<PlanRole, LabelSelector> {
  const etcd: LabelSelector = {matchExpressions: [{key: ETCD_LABEL, operator: 'In', values: ['true']}, {key: CONTROL_PLANE_LABEL, operator: 'DoesNotExist'}]}
  const server: LabelSelector = {matchExpressions: [{key: CONTROL_PLANE_LABEL, operator: 'In', values: ['true']}]}
  const agent: LabelSelector = {matchExpressions: [{key: CONTROL_PLANE_LABEL, operator: 'DoesNotExist'}, {key: ETCD_LABEL, operator: 'DoesNotExist'}]}
  if (options.excludeMaster) agent.matchExpressions!.push({key: MASTER_LABEL, operator: 'DoesNotExist'})
  return {etcd, server, agent}
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
  checkName(image, IMAGE_REPOSITORY_RULE, '--image', '--image registry.lan:5000/rancher/k3s-upgrade')
}

/**
 * Every name the plans carry, by the Kubernetes rule: the namespace, the plan names (they become
 * Job names and the name part of the node label plan.upgrade.cattle.io/<name>), the image and the
 * pull secrets. generate runs this before it asks the channel server or the cluster anything.
 */
export function checkPlanNames(options: Pick<PlanBuildOptions, 'distribution' | 'namespace' | 'namePrefix' | 'image' | 'imagePullSecrets'>): void {
  checkName(options.namespace ?? DEFAULT_NAMESPACE, DNS_LABEL_RULE, '--namespace', `--namespace ${DEFAULT_NAMESPACE}`)
  for (const name of Object.values(planNames(options.distribution, options.namePrefix))) {
    const from = options.namePrefix === undefined ? '' : ` (from --name-prefix ${JSON.stringify(options.namePrefix)})`
    checkName(name, DNS_LABEL_RULE, `plan name${from}`, `--name-prefix homelab- (plans homelab-server, homelab-agent), within 63 characters`)
  }
  if (options.image !== undefined) checkImage(options.image)
  for (const secret of options.imagePullSecrets ?? []) checkName(secret, DNS_SUBDOMAIN_RULE, '--image-pull-secret', '--image-pull-secret regcred')
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

/** The refusals of buildPlans (UsageError), on their own: generate runs them before it asks the cluster anything. */
export function checkPlanOptions(options: PlanBuildOptions): void {
  const {distribution, target} = options
  // SUC's upgrade images swap one binary; a kubeadm cluster is upgraded through its packages.
  binaryDistributionOf(distribution, 'system-upgrade-controller plans')
  checkPlanNames(options)
  if (!Number.isInteger(options.agentConcurrency) || options.agentConcurrency < 1) {
    throw new UsageError(`agent concurrency must be a whole number of at least 1, got ${options.agentConcurrency}`, {
      hint: 'with 0 the controller never upgrades anything; pass --agent-concurrency 1 or more',
    })
  }
  checkImage(options.image ?? (UPGRADE_IMAGES[distribution] as string))
  const version = target.kind === 'version' ? target.version : target.resolved
  if (version && version.distribution !== distribution) {
    throw new UsageError(`${version.format()} is a ${version.distribution} version, but the plans are for ${distribution}`, {
      hint: `pass a ${distribution} version, or --distribution ${version.distribution}`,
    })
  }
}

export function buildPlans(options: PlanBuildOptions): BuiltPlans {
  checkPlanOptions(options)
  const {distribution, target} = options
  const namespace = options.namespace ?? DEFAULT_NAMESPACE
  const serviceAccountName = options.serviceAccountName ?? DEFAULT_SERVICE_ACCOUNT
  const names = planNames(distribution, options.namePrefix)
  const roles: PlanRole[] = options.etcdPlan ? ['etcd', 'server', 'agent'] : ['server', 'agent']
  const image = options.image ?? (UPGRADE_IMAGES[distribution] as string)

  const selectors = defaultSelectors({excludeMaster: options.excludeMaster})
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

  let etcd: ReturnType<typeof common> | undefined
  if (options.etcdPlan) {
    etcd = common('etcd', 1, selectors.etcd)
    etcd.spec.cordon = true
    etcd.spec.upgrade = {...upgrade}
  }

  const server = common('server', 1, options.serverSelector ?? selectors.server)
  // Upstream's `prepare <etcd plan>` would wait for every control-plane node, i.e. for this
  // plan's own nodes, for ever: the server plan waits for the etcd plan with our own step
  // instead (prepare.ts says what each checks).
  if (etcd) server.spec.prepare = waitForPlanPrepare(image, {name: names.etcd, namespace, nodeSelector: etcd.spec.nodeSelector})
  server.spec.cordon = true
  server.spec.upgrade = {...upgrade}

  const agent = common('agent', options.agentConcurrency, options.agentSelector ?? selectors.agent)
  // prepare's image takes the plan's version as its tag too, so it runs the same release.
  agent.spec.prepare = upstreamPrepare(image, names.server)
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
      `the plans follow ${target.url}: the controller upgrades whenever that channel moves${target.resolved ? ` (today ${target.resolved.format()})` : ''}, and no version check runs then`,
    )
  }
  const plan = (parts: ReturnType<typeof common>): Plan => ({apiVersion: PLAN_API_VERSION, kind: PLAN_KIND, ...parts})
  const built = {etcd: etcd && plan(etcd), server: plan(server), agent: plan(agent)}
  return {...built, plans: roles.map((role) => built[role] as Plan), warnings}
}

/**
 * Multi-document YAML, in upgrade order, as `kubectl apply -f` takes it. Written for YAML 1.1
 * readers, which kubectl is: there `startTime: 01:00` would be the number 60 and `on` a
 * boolean, so such strings are quoted.
 */
export function renderPlans(plans: readonly Plan[], header: readonly string[] = []): string {
  const comment = header.map((line) => `# ${line}`.trimEnd()).join('\n')
  const body = plans.map((plan) => stringify(plan, {lineWidth: 0, version: '1.1'})).join('---\n')
  return comment ? `${comment}\n${body}` : body
}
