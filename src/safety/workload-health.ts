/**
 * The workloads' health the upgrade must give back: recorded before the first change, and
 * waited for (by watch) after each node is back, for the workloads whose pods that node ran.
 */
import type {V1DaemonSet, V1Deployment, V1LabelSelector, V1Pod, V1PodDisruptionBudget, V1ReplicaSet, V1StatefulSet} from '@kubernetes/client-node'

import {AbortedError, HomelabError, TimeoutError} from '../errors.js'
import type {KubeClients} from '../kube/client.js'
import {selectorMatches} from '../kube/selectors.js'
import {waitFor} from '../kube/wait.js'

export type HealthKind = 'Deployment' | 'StatefulSet' | 'DaemonSet' | 'ReplicaSet' | 'PodDisruptionBudget'

export interface HealthRecord {
  kind: HealthKind
  namespace: string
  name: string
  /** Replicas wanted (a PDB: desiredHealthy). */
  desired: number
  /** Replicas available (a PDB: currentHealthy). */
  available: number
  /** A PDB's selector, to know which pods it covers. */
  selector?: V1LabelSelector
}

export interface HealthBaseline {
  takenAt: string
  records: HealthRecord[]
  /** kube-system pods' controllers (or pod names) not Running and Ready before the run: not held against it. */
  kubeSystemUnready?: string[]
}

export const healthKey = (r: Pick<HealthRecord, 'kind' | 'namespace' | 'name'>): string => `${r.kind} ${r.namespace}/${r.name}`

/** Healthy before the run: everything wanted was available. Only those are waited on. */
export const wasHealthy = (r: HealthRecord): boolean => r.available >= r.desired

type Listed = {metadata?: {name?: string; namespace?: string; ownerReferences?: Array<{controller?: boolean}>}}

interface KindSpec {
  kind: HealthKind
  path: string
  list: (kube: KubeClients) => Promise<{items: Listed[]; metadata?: {resourceVersion?: string}}>
  counts: (object: Listed) => {desired: number; available: number; selector?: V1LabelSelector}
}

const KINDS: KindSpec[] = [
  {
    kind: 'Deployment',
    path: '/apis/apps/v1/deployments',
    list: (kube) => kube.apps.listDeploymentForAllNamespaces(),
    counts: (o) => {
      const d = o as V1Deployment
      return {desired: d.spec?.replicas ?? 1, available: d.status?.availableReplicas ?? 0}
    },
  },
  {
    kind: 'StatefulSet',
    path: '/apis/apps/v1/statefulsets',
    list: (kube) => kube.apps.listStatefulSetForAllNamespaces(),
    counts: (o) => {
      const s = o as V1StatefulSet
      return {desired: s.spec?.replicas ?? 1, available: s.status?.availableReplicas ?? s.status?.readyReplicas ?? 0}
    },
  },
  {
    kind: 'DaemonSet',
    path: '/apis/apps/v1/daemonsets',
    list: (kube) => kube.apps.listDaemonSetForAllNamespaces(),
    counts: (o) => {
      const d = o as V1DaemonSet
      return {desired: d.status?.desiredNumberScheduled ?? 0, available: d.status?.numberAvailable ?? 0}
    },
  },
  {
    kind: 'ReplicaSet',
    path: '/apis/apps/v1/replicasets',
    list: (kube) => kube.apps.listReplicaSetForAllNamespaces(),
    counts: (o) => {
      const r = o as V1ReplicaSet
      return {desired: r.spec?.replicas ?? 1, available: r.status?.availableReplicas ?? 0}
    },
  },
  {
    kind: 'PodDisruptionBudget',
    path: '/apis/policy/v1/poddisruptionbudgets',
    list: (kube) => kube.policy.listPodDisruptionBudgetForAllNamespaces(),
    counts: (o) => {
      const p = o as V1PodDisruptionBudget
      return {desired: p.status?.desiredHealthy ?? 0, available: p.status?.currentHealthy ?? 0, selector: p.spec?.selector}
    },
  },
]

const owned = (object: Listed) => (object.metadata?.ownerReferences ?? []).some((ref) => ref.controller)

/** One list per kind, before the first change. A ReplicaSet a Deployment owns is the Deployment's. */
export async function recordHealth(kube: KubeClients, now: () => Date = () => new Date()): Promise<HealthBaseline> {
  const [lists, systemPods] = await Promise.all([Promise.all(KINDS.map(async (spec) => ({spec, items: (await spec.list(kube)).items as Listed[]}))), kube.core.listNamespacedPod({namespace: 'kube-system'})])
  const records = lists.flatMap(({spec, items}) =>
    items
      .filter((item) => spec.kind !== 'ReplicaSet' || !owned(item))
      .map((item) => ({kind: spec.kind, namespace: item.metadata?.namespace ?? '', name: item.metadata?.name ?? '', ...spec.counts(item)})),
  )
  const kubeSystemUnready = [...new Set(systemPods.items.filter((pod) => expectedRunning(pod) && !runningAndReady(pod)).map(podController))].sort()
  return {takenAt: now().toISOString(), records, kubeSystemUnready}
}

/** A pod the cluster means to keep running: not a Job's (those finish), not finished. */
export function expectedRunning(pod: V1Pod): boolean {
  const job = pod.metadata?.ownerReferences?.some((ref) => ref.controller && ref.kind === 'Job')
  return !job && pod.status?.phase !== 'Succeeded' && !pod.metadata?.deletionTimestamp
}

export function runningAndReady(pod: V1Pod): boolean {
  return pod.status?.phase === 'Running' && (pod.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True')
}

/** What a pod stands for across restarts: its controller, else its own name. */
export function podController(pod: V1Pod): string {
  const owner = pod.metadata?.ownerReferences?.find((ref) => ref.controller)
  return owner ? `${owner.kind} ${pod.metadata?.namespace}/${owner.name}` : `Pod ${pod.metadata?.namespace}/${pod.metadata?.name}`
}

/**
 * The recorded workloads and budgets whose pods run on `node` now (read before its drain): its
 * pods' controllers, a ReplicaSet's Deployment in its place, and the budgets selecting them.
 */
export async function healthOfNode(kube: KubeClients, baseline: HealthBaseline, node: string): Promise<string[]> {
  const [pods, replicaSets] = await Promise.all([kube.core.listPodForAllNamespaces({fieldSelector: `spec.nodeName=${node}`}), kube.apps.listReplicaSetForAllNamespaces()])
  const deploymentOf = new Map(
    replicaSets.items.map((rs) => [`${rs.metadata?.namespace}/${rs.metadata?.name}`, rs.metadata?.ownerReferences?.find((ref) => ref.controller && ref.kind === 'Deployment')?.name]),
  )
  const recorded = new Set(baseline.records.map(healthKey))
  const keys = new Set<string>()
  for (const pod of pods.items) {
    const namespace = pod.metadata?.namespace ?? ''
    const owner = pod.metadata?.ownerReferences?.find((ref) => ref.controller)
    if (owner?.kind === 'ReplicaSet') {
      const deployment = deploymentOf.get(`${namespace}/${owner.name}`)
      keys.add(healthKey(deployment ? {kind: 'Deployment', namespace, name: deployment} : {kind: 'ReplicaSet', namespace, name: owner.name}))
    } else if (owner?.kind === 'StatefulSet' || owner?.kind === 'DaemonSet') {
      keys.add(healthKey({kind: owner.kind, namespace, name: owner.name}))
    }
    for (const pdb of baseline.records.filter((r) => r.kind === 'PodDisruptionBudget' && r.namespace === namespace)) {
      if (selectorMatches(pdb.selector, pod.metadata?.labels)) keys.add(healthKey(pdb))
    }
  }
  return [...keys].filter((key) => recorded.has(key)).sort()
}

export class HealthGateError extends HomelabError {}

export interface GateOptions {
  timeoutMs: number
  /** The node just back: its DaemonSet pods are judged on it alone. */
  node?: string
  /** Which node's return this gate follows, for the messages. */
  after: string
  signal?: AbortSignal
  onProgress?: (message: string) => void
}

export interface GateResult {
  waitedFor: string[]
  /** Unhealthy before the run: reported, not waited on. */
  unhealthyBefore: string[]
}

/**
 * Until every workload of `keys` that was healthy before the run is back to at least its
 * recorded availability: one watch per kind, all under one deadline. A workload deleted since
 * is not waited on.
 */
export async function waitHealthRestored(kube: KubeClients, baseline: HealthBaseline, keys: readonly string[], options: GateOptions): Promise<GateResult> {
  const wanted = baseline.records.filter((r) => keys.includes(healthKey(r)))
  const unhealthyBefore = wanted.filter((r) => !wasHealthy(r)).map(healthKey)
  const waited = wanted.filter(wasHealthy)
  const lagging = new Map<string, string>()
  let said = ''
  const report = () => {
    const text = [...lagging.values()].join(', ')
    if (text && text !== said) options.onProgress?.(`waiting for ${text}`)
    said = text
  }
  const deadline = Date.now() + options.timeoutMs
  // A node's own DaemonSet pods say whether it gave them back; the DaemonSet's count also drops
  // for every other node down at the time (one failing in parallel), which this node cannot fix.
  const perNode = options.node ? waited.filter((r) => r.kind === 'DaemonSet') : []
  const counted = waited.filter((r) => !perNode.includes(r))
  const waits: Array<Promise<unknown>> = KINDS.filter((spec) => counted.some((r) => r.kind === spec.kind)).map((spec) => {
    const mine = counted.filter((r) => r.kind === spec.kind)
    return waitFor<Listed, true>({
      kube,
      path: spec.path,
      list: () => spec.list(kube),
      check: (objects) => {
        for (const record of mine) {
          const object = objects.get(`${record.namespace}/${record.name}`)
          const available = object ? spec.counts(object).available : record.available
          if (available < record.available) lagging.set(healthKey(record), `${healthKey(record)} ${available}/${record.available} available`)
          else lagging.delete(healthKey(record))
        }
        report()
        return mine.every((record) => !lagging.has(healthKey(record))) ? true : undefined
      },
      timeoutMs: Math.max(1, deadline - Date.now()),
      description: `${spec.kind} availability after ${options.after}`,
      signal: options.signal,
    })
  })
  if (options.node && perNode.length > 0) {
    const fieldSelector = `spec.nodeName=${options.node}`
    waits.push(
      waitFor<V1Pod, true>({
        kube,
        path: '/api/v1/pods',
        query: {fieldSelector},
        list: () => kube.core.listPodForAllNamespaces({fieldSelector}),
        check: (pods) => {
          for (const record of perNode) {
            const ready = [...pods.values()].some((pod) => podController(pod) === healthKey(record) && runningAndReady(pod))
            if (ready) lagging.delete(healthKey(record))
            else lagging.set(healthKey(record), `${healthKey(record)}: its pod on ${options.node} not Ready`)
          }
          report()
          return perNode.every((record) => !lagging.has(healthKey(record))) ? true : undefined
        },
        timeoutMs: Math.max(1, deadline - Date.now()),
        description: `DaemonSet pods on ${options.node}`,
        signal: options.signal,
      }),
    )
  }
  try {
    await Promise.all(waits)
  } catch (error) {
    if (error instanceof AbortedError || !(error instanceof TimeoutError)) throw error
    throw new HealthGateError(`health gate after ${options.after}: not back within ${Math.round(options.timeoutMs / 1000)}s to where they were before the run: ${[...lagging.values()].join(', ')}`, {
      hint: `look at those pods (kubectl get pods -A -o wide | grep -v Running), or raise upgrade.healthGate.timeout; upgrade.healthGate.enabled: false skips the gate`,
    })
  }
  return {waitedFor: waited.map(healthKey), unhealthyBefore}
}
