import type {V1Pod, V1PodDisruptionBudget} from '@kubernetes/client-node'

import type {KubeClients} from './client.js'
import {apiFailure, isNotFound} from './api-errors.js'
import {selectorMatches} from './selectors.js'
import {waitFor} from './wait.js'
import {AbortedError, HomelabError, TimeoutError} from '../errors.js'
import {sleep} from '../sleep.js'

/** kubectl drain's options, by their flag names; durations in milliseconds. */
export interface DrainSettings {
  ignoreDaemonsets: boolean
  deleteEmptydirData: boolean
  force: boolean
  /** Seconds; -1 = each pod's own terminationGracePeriodSeconds. */
  gracePeriod: number
  timeoutMs: number
  disableEviction: boolean
  /** Pods deleted longer ago than this are not waited for (0 = always wait). */
  skipWaitForDeleteTimeoutMs: number
  podSelector: string
}

export interface DrainTimings {
  /** How long to wait before retrying an eviction a PodDisruptionBudget refused (kubectl: 5 s). */
  evictionRetryMs: number
}

export const defaultDrainTimings: DrainTimings = {evictionRetryMs: 5000}

/** A pod that stops the drain, and why, in kubectl's words. */
export interface DrainBlocker {
  pod: string
  reason: string
  fix: string
}

export interface DrainPlan {
  /** Pods that will be evicted (namespace/name). */
  evict: V1Pod[]
  /** Pods left alone, with kubectl's reason (DaemonSet-managed, mirror pod …). */
  ignored: Array<{pod: string; reason: string}>
  /** Pods that stop the drain under the current options. */
  blockers: DrainBlocker[]
  /** Pods covered by a PodDisruptionBudget that allows no disruption right now. */
  pdbBlocked: Array<{pod: string; pdb: string}>
}

export class DrainError extends HomelabError {}

const podName = (pod: V1Pod) => `${pod.metadata?.namespace}/${pod.metadata?.name}`

function isFinished(pod: V1Pod): boolean {
  return pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed'
}

/** kubectl's filters (pkg/drain/filters.go), in its order, for one pod. */
function classify(
  pod: V1Pod,
  settings: DrainSettings,
  now: number,
): {action: 'evict'} | {action: 'ignore'; reason: string} | {action: 'block'; reason: string; fix: string} {
  const deletedAt = pod.metadata?.deletionTimestamp ? new Date(pod.metadata.deletionTimestamp).getTime() : undefined
  if (deletedAt !== undefined && settings.skipWaitForDeleteTimeoutMs > 0 && now - deletedAt > settings.skipWaitForDeleteTimeoutMs) {
    return {action: 'ignore', reason: 'deleted longer ago than --skip-wait-for-delete-timeout'}
  }
  const controller = pod.metadata?.ownerReferences?.find((ref) => ref.controller)
  if (controller?.kind === 'DaemonSet') {
    if (settings.ignoreDaemonsets) return {action: 'ignore', reason: 'DaemonSet-managed'}
    return {action: 'block', reason: 'cannot delete DaemonSet-managed Pods', fix: 'set upgrade.drain.ignoreDaemonsets: true'}
  }
  if (pod.metadata?.annotations?.['kubernetes.io/config.mirror'] !== undefined) {
    return {action: 'ignore', reason: 'mirror pod (static pod managed by the kubelet)'}
  }
  if (!isFinished(pod) && pod.spec?.volumes?.some((volume) => volume.emptyDir) && !settings.deleteEmptydirData) {
    return {action: 'block', reason: 'cannot delete Pods with local storage (emptyDir)', fix: 'set upgrade.drain.deleteEmptydirData: true (emptyDir data is lost)'}
  }
  if (!isFinished(pod) && !controller && !settings.force) {
    return {action: 'block', reason: 'cannot delete Pods that declare no controller', fix: 'set upgrade.drain.force: true (the pod is not recreated elsewhere), or delete it yourself'}
  }
  return {action: 'evict'}
}

async function podsOnNode(kube: KubeClients, node: string, settings: DrainSettings): Promise<V1Pod[]> {
  const list = await kube.core.listPodForAllNamespaces({
    fieldSelector: `spec.nodeName=${node}`,
    labelSelector: settings.podSelector || undefined,
  })
  return list.items
}

/** Read-only: what a drain of this node would do now. Used by pre-flight and by the drain itself. */
export async function planDrain(kube: KubeClients, node: string, settings: DrainSettings, now = Date.now()): Promise<DrainPlan> {
  const plan = judgePods(await podsOnNode(kube, node, settings), settings, now)
  // The budgets only matter for pods that would be evicted.
  if (!settings.disableEviction && plan.evict.length > 0) addPdbBlocks(plan, await listPdbs(kube))
  return plan
}

/**
 * planDrain for many nodes from one list of pods and one of PodDisruptionBudgets: pre-flight of
 * 200 agents asks the API twice, not 400 times. The plans are in the nodes' order.
 */
export async function planDrainsFor(kube: KubeClients, nodes: readonly string[], settings: DrainSettings, now = Date.now()): Promise<DrainPlan[]> {
  if (nodes.length === 0) return []
  const [pods, pdbs] = await Promise.all([
    kube.core.listPodForAllNamespaces({labelSelector: settings.podSelector || undefined}),
    settings.disableEviction ? Promise.resolve([]) : listPdbs(kube),
  ])
  const byNode = new Map<string, V1Pod[]>()
  for (const pod of pods.items) {
    const node = pod.spec?.nodeName
    if (node) byNode.set(node, [...(byNode.get(node) ?? []), pod])
  }
  return nodes.map((node) => {
    const plan = judgePods(byNode.get(node) ?? [], settings, now)
    addPdbBlocks(plan, pdbs)
    return plan
  })
}

async function listPdbs(kube: KubeClients): Promise<V1PodDisruptionBudget[]> {
  return (await kube.policy.listPodDisruptionBudgetForAllNamespaces()).items
}

/** Each pod evicted, left alone, or a blocker; the budgets are judged after (addPdbBlocks). */
function judgePods(pods: readonly V1Pod[], settings: DrainSettings, now: number): DrainPlan {
  const plan: DrainPlan = {evict: [], ignored: [], blockers: [], pdbBlocked: []}
  for (const pod of pods) {
    const verdict = classify(pod, settings, now)
    if (verdict.action === 'evict') plan.evict.push(pod)
    else if (verdict.action === 'ignore') plan.ignored.push({pod: podName(pod), reason: verdict.reason})
    else plan.blockers.push({pod: podName(pod), reason: verdict.reason, fix: verdict.fix})
  }
  return plan
}

/** The pods to evict that a budget at zero disruptions would refuse. */
function addPdbBlocks(plan: DrainPlan, pdbs: readonly V1PodDisruptionBudget[]): void {
  for (const pod of plan.evict) {
    for (const pdb of pdbs) {
      if (pdb.metadata?.namespace !== pod.metadata?.namespace) continue
      if (!selectorMatches(pdb.spec?.selector, pod.metadata?.labels)) continue
      if ((pdb.status?.disruptionsAllowed ?? 0) === 0) {
        plan.pdbBlocked.push({pod: podName(pod), pdb: `${pdb.metadata?.namespace}/${pdb.metadata?.name}`})
      }
    }
  }
}

export interface DrainOptions {
  kube: KubeClients
  node: string
  settings: DrainSettings
  timings?: Partial<DrainTimings>
  signal?: AbortSignal
  /** Progress for the person watching: "evicting kube-system/coredns-…", "waiting for PDB …". */
  onProgress?: (message: string) => void
}

/**
 * kubectl drain without the cordon (the caller cordons first and records it): refuses on the
 * pods kubectl refuses on, evicts through `pods/eviction` (or deletes with --disable-eviction),
 * retries evictions a PodDisruptionBudget refuses, then waits for the pods to be gone. Bounded
 * by `settings.timeoutMs` in total.
 */
export async function drainNode(options: DrainOptions): Promise<{evicted: string[]}> {
  const {kube, node, settings, signal} = options
  const timings = {...defaultDrainTimings, ...options.timings}
  const deadline = Date.now() + settings.timeoutMs
  const plan = await planDrain(kube, node, settings)
  if (plan.blockers.length > 0) {
    const first = plan.blockers[0]
    throw new DrainError(
      `cannot drain ${node}: ${plan.blockers.map((b) => `${b.pod} (${b.reason})`).join(', ')}`,
      {hint: first.fix},
    )
  }

  const pending = new Map(plan.evict.map((pod) => [podName(pod), pod]))
  const evicted: string[] = []
  while (pending.size > 0) {
    if (signal?.aborted) throw new AbortedError(`cancelled while draining ${node}`)
    let refusal: string | undefined
    // All at once, as kubectl does (a goroutine per pod): a node's drain lasts its slowest pod, not their sum.
    const outcomes = await Promise.all([...pending].map(async ([name, pod]) => [name, await evictOrDelete(kube, pod, settings)] as const))
    for (const [name, outcome] of outcomes) {
      if (outcome === 'gone' || outcome === 'requested') {
        pending.delete(name)
        evicted.push(name)
        if (outcome === 'requested') options.onProgress?.(`evicted ${name}`)
      } else {
        refusal = `${name}: ${outcome.refused}`
      }
    }
    if (pending.size === 0) break
    // The budget gets the whole timeout: a last attempt at the deadline, even when that is
    // sooner than the next regular retry.
    const remaining = deadline - Date.now()
    if (remaining <= 0) {
      throw new TimeoutError(`draining ${node} timed out after ${Math.round(settings.timeoutMs / 1000)}s: ${refusal}`, {
        hint: 'a PodDisruptionBudget allows no disruption: scale the workload up, relax the PDB, or raise upgrade.drain.timeout',
      })
    }
    options.onProgress?.(`waiting to evict ${[...pending.keys()].join(', ')}: ${refusal}`)
    await sleep(Math.min(timings.evictionRetryMs, remaining), signal)
  }

  await waitForPodsGone(kube, node, plan.evict, settings, deadline, signal)
  return {evicted}
}

type EvictOutcome = 'requested' | 'gone' | {refused: string}

async function evictOrDelete(kube: KubeClients, pod: V1Pod, settings: DrainSettings): Promise<EvictOutcome> {
  const name = pod.metadata?.name as string
  const namespace = pod.metadata?.namespace as string
  const deleteOptions = settings.gracePeriod >= 0 ? {gracePeriodSeconds: settings.gracePeriod} : undefined
  try {
    if (settings.disableEviction) {
      await kube.core.deleteNamespacedPod({name, namespace, gracePeriodSeconds: deleteOptions?.gracePeriodSeconds})
    } else {
      await kube.core.createNamespacedPodEviction({
        name,
        namespace,
        body: {apiVersion: 'policy/v1', kind: 'Eviction', metadata: {name, namespace}, deleteOptions},
      })
    }
    return 'requested'
  } catch (error) {
    if (isNotFound(error)) return 'gone'
    const failure = apiFailure(error)
    if (failure.code === 429) return {refused: failure.message}
    throw new DrainError(`could not evict ${namespace}/${name}: ${failure.message}`, {
      cause: error,
      hint: failure.code === 403 ? 'the kubeconfig user needs create on pods/eviction' : 'see the message above; run with --on-failure=stop to inspect',
    })
  }
}

async function waitForPodsGone(
  kube: KubeClients,
  node: string,
  pods: V1Pod[],
  settings: DrainSettings,
  deadline: number,
  signal?: AbortSignal,
): Promise<void> {
  if (pods.length === 0) return
  // A pod is gone when no pod of that name with that UID remains; a replacement has a new UID.
  const uids = new Set(pods.map((pod) => pod.metadata?.uid))
  await waitFor({
    kube,
    path: '/api/v1/pods',
    query: {fieldSelector: `spec.nodeName=${node}`},
    list: () => kube.core.listPodForAllNamespaces({fieldSelector: `spec.nodeName=${node}`}),
    check: (objects) => {
      const now = Date.now()
      for (const pod of objects.values()) {
        if (!uids.has(pod.metadata?.uid)) continue
        const deletedAt = pod.metadata?.deletionTimestamp ? new Date(pod.metadata.deletionTimestamp).getTime() : undefined
        if (deletedAt !== undefined && settings.skipWaitForDeleteTimeoutMs > 0 && now - deletedAt > settings.skipWaitForDeleteTimeoutMs) continue
        return undefined
      }
      return true
    },
    timeoutMs: Math.max(1000, deadline - Date.now()),
    description: `the evicted pods on ${node} to terminate`,
    hint: 'a pod is stuck terminating: check its finalizers and the node\'s kubelet, or raise upgrade.drain.timeout',
    signal,
  })
}
