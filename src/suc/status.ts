/**
 * What the controller is doing with our plans, and when it is stuck, why: read from the Plans'
 * status, the nodes' `plan.upgrade.cattle.io/<plan>` labels, the Jobs the controller made and
 * their pods (a terminated container's message, an image that cannot be pulled, a `prepare`
 * step still waiting for the plan before it). `diagnosePlans` is pure; `readPlansStatus` and
 * `waitForPlans` add the API.
 */
import type {V1ContainerStatus, V1Job, V1Node, V1Pod} from '@kubernetes/client-node'

import {formatDuration} from '../duration.js'
import {AbortedError, ExitCode, HomelabError, isHomelabError, TimeoutError} from '../errors.js'
import {apiFailure} from '../kube/api-errors.js'
import {BatchV1Api} from '../bundled/kubernetes-client.js'
import type {KubeClients} from '../kube/client.js'
import {selectorMatches} from '../kube/selectors.js'
import {waitFor} from '../kube/wait.js'
import {sleep} from '../sleep.js'
import {isVersionString, parseVersion} from '../versions/release-version.js'
import {parseLabelSelector} from './syntax.js'
import {prepareWaitOf} from './prepare.js'
import {CONTROL_PLANE_LABEL} from './roles.js'
import {
  type ConditionStatus,
  DEFAULT_NAMESPACE,
  LABEL_NODE,
  LABEL_PLAN,
  MANAGED_BY,
  MANAGED_BY_LABEL,
  type Plan,
  PLAN_DISABLED,
  PLAN_GROUP,
  PLAN_PLURAL,
  PLAN_ROLE_LABEL,
  PLAN_ROLES,
  PLAN_VERSION,
  isPlanRole,
  type PlanRole,
  planNodeLabel,
} from './types.js'

/** The controller only ever selects nodes that carry this label (it targets Jobs by hostname). */
const HOSTNAME_LABEL = 'kubernetes.io/hostname'
const JOB_NAME_LABELS = ['batch.kubernetes.io/job-name', 'job-name']

const IMAGE_PULL_REASONS = new Set(['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'ErrImageNeverPull', 'RegistryUnavailable'])
const CONFIG_REASONS = new Set(['CreateContainerConfigError', 'CreateContainerError', 'RunContainerError'])

export type NodeState = 'done' | 'applying' | 'failed' | 'pending' | 'opted-out'

export interface NodeProgress {
  name: string
  state: NodeState
  /** The kubelet's version, `+` form. */
  version: string
  cordoned: boolean
}

/**
 * A Job that is not going well:
 * - failed: the Job gave up (backoff limit, deadline); the controller will not retry it;
 * - stuck: it cannot make progress by itself (image pull, unschedulable, bad config);
 * - retrying: its container failed and the Job is about to try again;
 * - waiting: `prepare` waits for the plan before (expected while that one upgrades).
 */
export interface JobProblem {
  plan: string
  node: string
  job: string
  state: 'failed' | 'stuck' | 'retrying' | 'waiting'
  reason: string
  message: string
  /** When the Job started (ISO time). */
  since?: string
  /** For stuck jobs: past `stuckAfterMs`, so a waiting caller should give up. */
  givenUp?: boolean
}

export interface PlanReport {
  name: string
  role?: PlanRole
  /** `v1.31.4+k3s1`, or `channel <url>`. */
  target: string
  /** The controller's resolution, `+` form. */
  latestVersion?: string
  latestHash?: string
  complete: {status: ConditionStatus; reason?: string; message?: string}
  applying: string[]
  done: string[]
  toGo: string[]
  optedOut: string[]
  nodes: NodeProgress[]
  problems: JobProblem[]
  /** The controller has resolved the plan's current spec (else its status is old or missing: is it running?). */
  pickedUp: boolean
  /** The controller has finished this plan's current version on every node it selects. */
  finished: boolean
}

export interface CordonedNode {
  node: string
  plan: string
  job: string
}

export type PlansState = 'complete' | 'in-progress' | 'failed'

export interface PlansReport {
  namespace: string
  plans: PlanReport[]
  /** Nodes a failed or stuck Job left unschedulable: the controller uncordons only after success. */
  leftCordoned: CordonedNode[]
  uncordonCommand?: string
  state: PlansState
  summary: string
}

export interface DiagnoseInput {
  namespace: string
  plans: readonly Plan[]
  nodes: readonly V1Node[]
  jobs: readonly V1Job[]
  pods: readonly V1Pod[]
  now: number
  /** A stuck Job older than this counts as failed for good. */
  stuckAfterMs: number
}

/** `+` form of a version the controller wrote with `-`; other strings unchanged. */
export function displayVersion(version: string | undefined): string | undefined {
  if (version === undefined || version === '') return undefined
  return isVersionString(version) ? parseVersion(version).format() : version
}

function munge(version: string): string {
  return version.replaceAll('+', '-')
}

function jobCondition(job: V1Job, type: string) {
  return job.status?.conditions?.find((c) => c.type === type && c.status === 'True')
}

function podsOf(job: V1Job, pods: readonly V1Pod[]): V1Pod[] {
  const name = job.metadata?.name
  return pods
    .filter((pod) => JOB_NAME_LABELS.some((label) => pod.metadata?.labels?.[label] === name))
    .sort((a, b) => String(a.metadata?.creationTimestamp ?? '').localeCompare(String(b.metadata?.creationTimestamp ?? '')))
}

function allStatuses(pod: V1Pod): Array<V1ContainerStatus & {init: boolean}> {
  return [
    ...(pod.status?.initContainerStatuses ?? []).map((s) => ({...s, init: true})),
    ...(pod.status?.containerStatuses ?? []).map((s) => ({...s, init: false})),
  ]
}

function imageOf(pod: V1Pod, container: string): string | undefined {
  return [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].find((c) => c.name === container)?.image
}

/** What a pod says about why its Job failed: the first container that exited non-zero. */
function failureDetail(pod: V1Pod | undefined): string | undefined {
  if (!pod) return undefined
  for (const status of allStatuses(pod)) {
    const terminated = status.state?.terminated ?? status.lastState?.terminated
    if (terminated && terminated.exitCode !== 0) {
      const text = (terminated.message ?? '').trim() || terminated.reason || 'no message'
      return `container ${status.name} exited ${terminated.exitCode}: ${text}`
    }
    const waiting = status.state?.waiting
    if (waiting && (IMAGE_PULL_REASONS.has(waiting.reason ?? '') || CONFIG_REASONS.has(waiting.reason ?? ''))) {
      return `container ${status.name}: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}`
    }
  }
  return undefined
}

function diagnoseJob(plan: Plan, job: V1Job, pods: readonly V1Pod[], input: DiagnoseInput): JobProblem | undefined {
  const node = job.metadata?.labels?.[LABEL_NODE] ?? '?'
  const base = {plan: plan.metadata.name, node, job: job.metadata?.name ?? '?'}
  const started = job.status?.startTime ?? job.metadata?.creationTimestamp
  const since = started ? new Date(started).toISOString() : undefined
  const age = started ? input.now - new Date(started).getTime() : 0
  const mine = podsOf(job, pods)
  const latest = mine.at(-1)

  const failed = jobCondition(job, 'Failed')
  if (failed) {
    // The pod that explains it may be any of the retries; the newest that failed says most.
    const explaining = [...mine].reverse().find((pod) => failureDetail(pod) !== undefined)
    const detail = failureDetail(explaining)
    return {
      ...base,
      state: 'failed',
      reason: failed.reason ?? 'Failed',
      message: [failed.message, detail].filter(Boolean).join('; ') || 'the Job failed',
      since,
    }
  }
  if (jobCondition(job, 'Complete')) return undefined
  if (!latest) return undefined

  const scheduled = latest.status?.conditions?.find((c) => c.type === 'PodScheduled')
  if (scheduled?.status === 'False' && scheduled.reason === 'Unschedulable') {
    return {
      ...base,
      state: 'stuck',
      reason: 'Unschedulable',
      message: `the upgrade pod cannot be scheduled on ${node}: ${scheduled.message ?? 'no reason given'} (a taint the plan does not tolerate? see --tolerations)`,
      since,
      givenUp: age >= input.stuckAfterMs,
    }
  }
  for (const status of allStatuses(latest)) {
    const waiting = status.state?.waiting
    if (!waiting?.reason) continue
    if (IMAGE_PULL_REASONS.has(waiting.reason)) {
      const image = status.image || imageOf(latest, status.name) || 'its image'
      return {
        ...base,
        state: 'stuck',
        reason: waiting.reason,
        message: `cannot pull ${image} for ${status.init ? 'init ' : ''}container ${status.name}${waiting.message ? `: ${waiting.message}` : ''}`,
        since,
        givenUp: age >= input.stuckAfterMs,
      }
    }
    if (CONFIG_REASONS.has(waiting.reason)) {
      return {...base, state: 'stuck', reason: waiting.reason, message: `container ${status.name}: ${waiting.message ?? waiting.reason}`, since, givenUp: age >= input.stuckAfterMs}
    }
  }
  const prepare = (latest.status?.initContainerStatuses ?? []).find((s) => s.name === 'prepare')
  const wait = prepareWaitOf(plan.spec)
  if (prepare?.state?.running && wait) {
    return {...base, state: 'waiting', reason: 'PrepareWaiting', message: waitingFor(wait, input), since}
  }
  const detail = mine.length > 1 || latest.status?.phase === 'Failed' ? failureDetail([...mine].reverse().find((pod) => failureDetail(pod) !== undefined)) : undefined
  if (detail) return {...base, state: 'retrying', reason: 'ContainerFailed', message: `${detail}; the Job tries again (${mine.length} attempt${mine.length === 1 ? '' : 's'} so far)`, since}
  return undefined
}

/**
 * Says what a prepare step waits for, from the state of the plan it names: upstream's waits for
 * every control-plane node, ours for the nodes its selector picks (prepare.ts).
 */
function waitingFor(wait: NonNullable<ReturnType<typeof prepareWaitOf>>, input: DiagnoseInput): string {
  const plan = input.plans.find((p) => p.metadata.name === wait.plan)
  if (!plan) return `prepare waits for plan ${wait.plan}, which does not exist in ${input.namespace}`
  const applying = plan.status?.applying ?? []
  if (applying.length > 0) return `prepare waits for plan ${wait.plan} (still applying on ${applying.join(', ')})`
  const want = plan.status?.latestVersion
  let selector
  try {
    selector = wait.kind === 'selector' ? parseLabelSelector(wait.selector) : {matchExpressions: [{key: CONTROL_PLANE_LABEL, operator: 'Exists' as const}]}
  } catch {
    return `prepare waits for plan ${wait.plan}`
  }
  const behind = input.nodes
    .filter((n) => selectorMatches(selector, n.metadata?.labels ?? {}))
    .filter((n) => want && munge(n.status?.nodeInfo?.kubeletVersion ?? '') !== want)
    .map((n) => `${n.metadata?.name} at ${n.status?.nodeInfo?.kubeletVersion}`)
  const whose = wait.kind === 'selector' ? `the nodes of plan ${wait.plan}` : 'the control-plane nodes'
  if (behind.length > 0) return `prepare waits for ${whose} to run ${displayVersion(want)} (${behind.join(', ')})`
  return `prepare waits for plan ${wait.plan}`
}

function reportPlan(plan: Plan, input: DiagnoseInput): PlanReport {
  const status = plan.status ?? {}
  const wanted = plan.spec.version ? munge(plan.spec.version) : undefined
  // Until the controller has resolved a new spec.version, its status (hash, applying, failed
  // Jobs) is about the previous version and says nothing about this one.
  const stale = wanted !== undefined && status.latestVersion !== undefined && status.latestVersion !== wanted
  const hash = stale ? undefined : status.latestHash
  const label = planNodeLabel(plan.metadata.name)
  const applyingNames = new Set(stale ? [] : (status.applying ?? []))
  const currentJobs = input.jobs.filter(
    (job) => job.metadata?.labels?.[LABEL_PLAN] === plan.metadata.name && hash !== undefined && job.metadata?.labels?.[label] === hash,
  )
  const problems = currentJobs.map((job) => diagnoseJob(plan, job, input.pods, input)).filter((p): p is JobProblem => p !== undefined)
  const failedNodes = new Set(problems.filter((p) => p.state === 'failed' || p.givenUp).map((p) => p.node))

  const nodes: NodeProgress[] = []
  for (const node of input.nodes) {
    const labels = node.metadata?.labels ?? {}
    if (!(HOSTNAME_LABEL in labels) || !selectorMatches(plan.spec.nodeSelector, labels)) continue
    const name = node.metadata?.name ?? '?'
    const value = labels[label]
    const state: NodeState =
      value === PLAN_DISABLED ? 'opted-out' : hash !== undefined && value === hash ? 'done' : failedNodes.has(name) ? 'failed' : applyingNames.has(name) ? 'applying' : 'pending'
    nodes.push({name, state, version: node.status?.nodeInfo?.kubeletVersion ?? '', cordoned: node.spec?.unschedulable === true})
  }
  nodes.sort((a, b) => a.name.localeCompare(b.name))
  const names = (state: NodeState) => nodes.filter((n) => n.state === state).map((n) => n.name)

  const complete = stale ? undefined : status.conditions?.find((c) => c.type === 'Complete')
  const resolved = hash !== undefined && (wanted === undefined || status.latestVersion === wanted)
  const done = names('done')
  // A node's Job can finish before its kubelet reports the new version (the upgrade restarts it): done means running it.
  const running = (n: NodeProgress) => status.latestVersion === undefined || munge(n.version) === status.latestVersion
  const finished = resolved && complete?.status === 'True' && nodes.every((n) => (n.state === 'done' && running(n)) || n.state === 'opted-out')
  const role = plan.metadata.labels?.[PLAN_ROLE_LABEL]
  return {
    name: plan.metadata.name,
    role: isPlanRole(role) ? role : undefined,
    target: plan.spec.version ? (displayVersion(plan.spec.version) ?? plan.spec.version) : `channel ${plan.spec.channel ?? '?'}`,
    latestVersion: stale ? undefined : displayVersion(status.latestVersion),
    latestHash: hash,
    complete: {status: (complete?.status as ConditionStatus | undefined) ?? 'Unknown', reason: complete?.reason, message: complete?.message},
    applying: [...applyingNames].filter((n) => !failedNodes.has(n) && !done.includes(n)).sort(),
    done,
    toGo: [...names('pending'), ...names('failed')].sort(),
    optedOut: names('opted-out'),
    nodes,
    problems,
    pickedUp: hash !== undefined,
    finished,
  }
}

/** The verdict over all plans, from already-read objects. */
export function diagnosePlans(input: DiagnoseInput): PlansReport {
  // In upgrade order (etcd-only servers, control-plane servers, agents), as the prepare steps run them.
  const depth = chainDepths(input.plans)
  const ordered = [...input.plans].sort((a, b) => depth(a) - depth(b) || rank(a) - rank(b) || a.metadata.name.localeCompare(b.metadata.name))
  const plans = ordered.map((plan) => reportPlan(plan, input))
  const cordoned = new Set(input.nodes.filter((n) => n.spec?.unschedulable === true).map((n) => n.metadata?.name))
  const leftCordoned: CordonedNode[] = []
  for (const plan of plans) {
    for (const problem of plan.problems) {
      if ((problem.state === 'failed' || problem.state === 'stuck') && cordoned.has(problem.node) && !leftCordoned.some((c) => c.node === problem.node)) {
        leftCordoned.push({node: problem.node, plan: problem.plan, job: problem.job})
      }
    }
  }
  const failed = plans.some((p) => p.problems.some((x) => x.state === 'failed' || x.givenUp === true))
  const state: PlansState = failed ? 'failed' : plans.length > 0 && plans.every((p) => p.finished) ? 'complete' : 'in-progress'
  return {
    namespace: input.namespace,
    plans,
    leftCordoned,
    uncordonCommand: leftCordoned.length > 0 ? `kubectl uncordon ${leftCordoned.map((c) => c.node).join(' ')}` : undefined,
    state,
    summary: summarize(plans, state),
  }
}

/** How many plans wait before this one, following the prepare steps (a plan named but absent counts as one). */
function chainDepths(plans: readonly Plan[]): (plan: Plan) => number {
  const byName = new Map(plans.map((p) => [p.metadata.name, p]))
  const memo = new Map<string, number>()
  const depth = (plan: Plan, seen: Set<string>): number => {
    const name = plan.metadata.name
    const known = memo.get(name)
    if (known !== undefined) return known
    const wait = prepareWaitOf(plan.spec)
    const before = wait ? byName.get(wait.plan) : undefined
    const value = !wait ? 0 : !before || seen.has(before.metadata.name) ? 1 : depth(before, new Set([...seen, name])) + 1
    memo.set(name, value)
    return value
  }
  return (plan) => depth(plan, new Set([plan.metadata.name]))
}

function rank(plan: Plan): number {
  const role = plan.metadata.labels?.[PLAN_ROLE_LABEL]
  return isPlanRole(role) ? PLAN_ROLES.indexOf(role) : PLAN_ROLES.length
}

function summarize(plans: readonly PlanReport[], state: PlansState): string {
  const parts = plans.map((p) => {
    const total = p.nodes.length - p.optedOut.length
    const version = p.latestVersion ?? p.target
    if (p.finished) return `${p.name}: complete (${total}/${total} at ${version})`
    const bits = [`${p.done.length}/${total} at ${version}`]
    if (!p.pickedUp) bits.push('not yet picked up by the controller')
    if (p.applying.length > 0) bits.push(`applying on ${p.applying.join(', ')}`)
    const failed = p.problems.filter((x) => x.state === 'failed' || x.givenUp)
    if (failed.length > 0) bits.push(`failed on ${failed.map((x) => x.node).join(', ')}`)
    return `${p.name}: ${bits.join(', ')}`
  })
  const head = state === 'complete' ? 'all plans complete' : state === 'failed' ? 'FAILED' : 'in progress'
  return `${head}: ${parts.join('; ')}`
}

export interface ReadStatusOptions {
  namespace?: string
  /** Only these plans (by name); default: every Plan we manage in the namespace. */
  names?: readonly string[]
  stuckAfterMs?: number
  now?: () => number
}

export const DEFAULT_STUCK_AFTER_MS = 300_000

interface Snapshot {
  report: PlansReport
  /** resourceVersions by collection, to notice the next change. */
  versions: Record<'plans' | 'jobs' | 'pods', Map<string, string>>
}

const keyOf = (o: {metadata?: {namespace?: string; name?: string}}) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`

function versionsOf(items: ReadonlyArray<{metadata?: {namespace?: string; name?: string; resourceVersion?: string}}>): Map<string, string> {
  return new Map(items.map((o) => [keyOf(o), o.metadata?.resourceVersion ?? '']))
}

function listPlans(kube: KubeClients, namespace: string): Promise<{items: Plan[]; metadata?: {resourceVersion?: string}}> {
  return kube.customObjects.listNamespacedCustomObject({group: PLAN_GROUP, version: PLAN_VERSION, namespace, plural: PLAN_PLURAL}) as Promise<{items: Plan[]; metadata?: {resourceVersion?: string}}>
}

async function snapshot(kube: KubeClients, options: ReadStatusOptions): Promise<Snapshot> {
  const namespace = options.namespace ?? DEFAULT_NAMESPACE
  const batch = kube.kubeConfig.makeApiClient(BatchV1Api)
  let planList
  try {
    planList = await listPlans(kube, namespace)
  } catch (error) {
    const code = (error as {code?: number}).code
    if (code === 404) {
      throw new HomelabError(`the API server does not serve Plans (${PLAN_GROUP}/${PLAN_VERSION}): the system-upgrade-controller is not installed`, {
        cause: error,
        hint: 'install it and apply plans with `homelab k8s plan apply --install-controller --to <version>`',
      })
    }
    throw error
  }
  const [nodes, jobs, pods] = await Promise.all([
    kube.core.listNode(),
    batch.listNamespacedJob({namespace, labelSelector: LABEL_PLAN}),
    kube.core.listNamespacedPod({namespace, labelSelector: LABEL_PLAN}),
  ])
  const wanted = options.names ? new Set(options.names) : undefined
  const plans = planList.items.filter((p) => (wanted ? wanted.has(p.metadata.name) : p.metadata.labels?.[MANAGED_BY_LABEL] === MANAGED_BY))
  if (plans.length === 0) {
    const which = wanted ? `named ${[...wanted].join(', ')}` : `labelled ${MANAGED_BY_LABEL}=${MANAGED_BY}`
    throw new HomelabError(`no Plans ${which} in namespace ${namespace}`, {
      hint: 'apply them first with `homelab k8s plan apply --to <version>` (or pass --namespace / --name-prefix as used then)',
    })
  }
  const report = diagnosePlans({
    namespace,
    plans,
    nodes: nodes.items,
    jobs: jobs.items,
    pods: pods.items,
    now: (options.now ?? Date.now)(),
    stuckAfterMs: options.stuckAfterMs ?? DEFAULT_STUCK_AFTER_MS,
  })
  return {report, versions: {plans: versionsOf(planList.items), jobs: versionsOf(jobs.items), pods: versionsOf(pods.items)}}
}

/** One look at the plans: reads only. */
export async function readPlansStatus(kube: KubeClients, options: ReadStatusOptions = {}): Promise<PlansReport> {
  return (await snapshot(kube, options)).report
}

export interface WaitPlansOptions extends ReadStatusOptions {
  timeoutMs: number
  signal?: AbortSignal
  /** Every new report (only when something changed), for progress output. */
  onReport?: (report: PlansReport) => void
  /** Longest stretch without a fresh look, for what no watch event announces (a Job growing old). */
  recheckMs?: number
  /** A read failed in a way that may pass (the API server restarting); the wait goes on. */
  onRetry?: (error: unknown) => void
}

export type WaitOutcome = 'complete' | 'failed' | 'timeout'

/** No answer, or one that says "try again": what an API server restarting looks like. */
function isTransient(error: unknown): boolean {
  if (isHomelabError(error)) return false
  const code = apiFailure(error).code
  return code === undefined || code === 429 || code >= 500
}

/**
 * Follows the plans by watch (Plans, Jobs and their pods in the namespace) until every plan is
 * complete, a Job has failed for good, or `timeoutMs` passes. Never throws on those outcomes:
 * the caller gets the last report and says what it means.
 */
export async function waitForPlans(kube: KubeClients, options: WaitPlansOptions): Promise<{outcome: WaitOutcome; report: PlansReport}> {
  const now = options.now ?? Date.now
  const deadline = now() + options.timeoutMs
  const namespace = options.namespace ?? DEFAULT_NAMESPACE
  const batch = kube.kubeConfig.makeApiClient(BatchV1Api)
  let lastSummary: string | undefined
  let lastReport: PlansReport | undefined
  let pause = 250
  while (true) {
    if (options.signal?.aborted) throw new AbortedError('cancelled while waiting for the plans')
    let current: Snapshot
    try {
      current = await snapshot(kube, options)
      pause = 250
    } catch (error) {
      // Upgrading the server that serves the API restarts it (a one-server homelab always does):
      // keep trying until the deadline, then report the last state seen.
      if (!isTransient(error)) throw error
      options.onRetry?.(error)
      if (now() >= deadline) {
        if (lastReport) return {outcome: 'timeout', report: lastReport}
        throw error
      }
      await sleep(Math.min(pause, Math.max(0, deadline - now())), options.signal)
      pause = Math.min(pause * 2, 5000)
      continue
    }
    const {report, versions} = current
    lastReport = report
    const fingerprint = JSON.stringify(report)
    if (fingerprint !== lastSummary) options.onReport?.(report)
    lastSummary = fingerprint
    if (report.state === 'complete') return {outcome: 'complete', report}
    if (report.state === 'failed') {
      // The controller records the failure on the Plan just after the Job; read once more so
      // the report carries its Complete condition too.
      const again = (await snapshot(kube, options)).report
      return {outcome: 'failed', report: again.state === 'failed' ? again : report}
    }
    const remaining = deadline - now()
    if (remaining <= 0) return {outcome: 'timeout', report}

    // Wake up early for a stuck Job that is about to count as failed.
    const stuckAfter = options.stuckAfterMs ?? DEFAULT_STUCK_AFTER_MS
    const stuckDue = report.plans
      .flatMap((p) => p.problems)
      .filter((p) => p.state === 'stuck' && p.since)
      .map((p) => new Date(p.since as string).getTime() + stuckAfter - now())
    const slice = Math.max(50, Math.min(remaining, options.recheckMs ?? 30_000, ...stuckDue.map((ms) => ms + 50)))
    await nextChange(kube, batch, namespace, versions, slice, options.signal)
  }
}

/** Resolves at the first change to any watched collection, or after `sliceMs`. */
async function nextChange(
  kube: KubeClients,
  batch: BatchV1Api,
  namespace: string,
  versions: Snapshot['versions'],
  sliceMs: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  const stop = new AbortController()
  const combined = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal
  const changed = (known: Map<string, string>) => (objects: ReadonlyMap<string, {metadata?: {resourceVersion?: string}}>) => {
    if (objects.size !== known.size) return true
    for (const [key, object] of objects) if (known.get(key) !== (object.metadata?.resourceVersion ?? '')) return true
    return undefined
  }
  const watch = <T extends {metadata?: {name?: string; namespace?: string; resourceVersion?: string}}>(
    path: string,
    list: () => Promise<{items: T[]; metadata?: {resourceVersion?: string}}>,
    known: Map<string, string>,
    labelSelector?: string,
  ) =>
    waitFor<T, true>({
      kube,
      path,
      list,
      query: labelSelector ? {labelSelector} : undefined,
      check: changed(known),
      timeoutMs: sliceMs,
      description: 'a change to the plans',
      signal: combined,
    })
  // Every watch settles (the losers by the abort below), so none rejects unobserved.
  const settle = (promise: Promise<unknown>) => promise.then(() => undefined, () => undefined)
  await Promise.race([
    settle(watch(`/apis/${PLAN_GROUP}/${PLAN_VERSION}/namespaces/${namespace}/${PLAN_PLURAL}`, () => listPlans(kube, namespace), versions.plans)),
    settle(watch(`/apis/batch/v1/namespaces/${namespace}/jobs`, () => batch.listNamespacedJob({namespace, labelSelector: LABEL_PLAN}), versions.jobs, LABEL_PLAN)),
    settle(watch(`/api/v1/namespaces/${namespace}/pods`, () => kube.core.listNamespacedPod({namespace, labelSelector: LABEL_PLAN}), versions.pods, LABEL_PLAN)),
  ])
  stop.abort()
  if (signal?.aborted) throw new AbortedError('cancelled while waiting for the plans')
}

/** "5m" style age of a problem, for tables. */
export function problemAge(problem: JobProblem, now = Date.now()): string | undefined {
  return problem.since ? formatDuration(Math.max(0, Math.round((now - new Date(problem.since).getTime()) / 1000) * 1000)) : undefined
}

/**
 * The exit codes of `plan status`, fixed by the issue that asked for it: 4 when a Job failed for
 * good, 5 when --wait ran out of time. They reuse the numbers of ExitCode (whose names speak of
 * the SSH saga) because a script reading `$?` sees only numbers.
 */
export const PLAN_EXIT = {complete: ExitCode.ok, failed: ExitCode.compensated, timeout: ExitCode.compensationIncomplete} as const

/** The error to end with for a failed or timed-out wait (undefined when complete or still running without --wait). */
export function outcomeError(outcome: WaitOutcome | PlansState, report: PlansReport, timeoutMs?: number): HomelabError | undefined {
  if (outcome === 'failed') {
    const failures = report.plans.flatMap((p) => p.problems).filter((p) => p.state === 'failed' || p.givenUp)
    const first = failures[0]
    const what = first ? `plan ${first.plan} failed on ${first.node}: ${first.reason}: ${first.message}` : report.summary
    const fixes = [
      report.uncordonCommand ? `fix the cause, then \`${report.uncordonCommand}\` (the controller leaves failed nodes cordoned)` : 'fix the cause',
      `re-apply the plans (a new version or \`kubectl -n ${report.namespace} delete job ${first?.job ?? '<job>'}\` makes the controller try again)`,
    ]
    return new HomelabError(what, {hint: fixes.join('; '), exitCode: PLAN_EXIT.failed})
  }
  if (outcome === 'timeout') {
    return new TimeoutError(`the plans did not finish within ${formatDuration(timeoutMs ?? 0)}: ${report.summary}`, {
      hint: 'wait longer (--timeout), or look at the jobs: kubectl -n ' + report.namespace + ' get jobs,pods',
      exitCode: PLAN_EXIT.timeout,
    })
  }
  return undefined
}
