/**
 * The check at the end of a run: read from the API now, not assumed from what the steps did.
 * Every upgraded node Ready at the target, every workload that was healthy before at least as
 * available as it was, every kube-system pod Running and Ready (except those that were not
 * before the run). Waits a bounded time for all three, then says what it saw, before → after.
 */
import type {V1Node, V1Pod} from '@kubernetes/client-node'

import {AbortedError, HomelabError, TimeoutError} from '../errors.js'
import type {KubeClients} from '../kube/client.js'
import {isNodeReady} from '../kube/nodes.js'
import {waitFor} from '../kube/wait.js'
import {type HealthBaseline, expectedRunning, healthKey, podController, recordHealth, runningAndReady, waitHealthRestored, wasHealthy} from './workload-health.js'

export interface Verification {
  checkedAt: string
  passed: boolean
  /** Each upgraded node: before → after. */
  nodes: Array<{name: string; before: string; after?: string; ready: boolean}>
  /** Workloads whose availability is not what it was before the run (better or worse). */
  workloads: Array<{workload: string; before: number; after: number; desired: number}>
  /** kube-system pods not Running and Ready now (and not already so before the run). */
  kubeSystemNotReady: string[]
  problems: string[]
}

export class VerificationError extends HomelabError {}

export interface VerifyRequest {
  target: string
  nodes: ReadonlyArray<{name: string; fromVersion: string}>
  baseline?: HealthBaseline
  timeoutMs: number
  signal?: AbortSignal
  onProgress?: (message: string) => void
}

export async function verifyCluster(kube: KubeClients, request: VerifyRequest): Promise<Verification> {
  const {baseline, signal} = request
  const deadline = Date.now() + request.timeoutMs
  const left = () => Math.max(1, deadline - Date.now())
  const names = new Set(request.nodes.map((n) => n.name))
  const excused = new Set(baseline?.kubeSystemUnready ?? [])
  const systemNotReady = (pods: Iterable<V1Pod>) => [...pods].filter((pod) => expectedRunning(pod) && !runningAndReady(pod) && !excused.has(podController(pod)))
  const settled = (wait: Promise<unknown>) =>
    wait.catch((error: unknown) => {
      if (error instanceof AbortedError) throw error
      if (!(error instanceof TimeoutError) && !(error instanceof HomelabError)) throw error
    })
  request.onProgress?.('verifying: nodes Ready at the target, workloads as available as before, kube-system pods Ready')
  await Promise.all([
    settled(
      waitFor<V1Node, true>({
        kube,
        path: '/api/v1/nodes',
        list: () => kube.core.listNode(),
        check: (nodes) => ([...names].every((name) => {
          const node = nodes.get(`/${name}`)
          return node !== undefined && isNodeReady(node) && node.status?.nodeInfo?.kubeletVersion === request.target
        }) ? true : undefined),
        timeoutMs: left(),
        description: 'the upgraded nodes to be Ready at the target',
        signal,
      }),
    ),
    baseline
      ? settled(waitHealthRestored(kube, baseline, baseline.records.filter(wasHealthy).map(healthKey), {timeoutMs: left(), after: 'the last node', signal, onProgress: request.onProgress}))
      : Promise.resolve(),
    settled(
      waitFor<V1Pod, true>({
        kube,
        path: '/api/v1/namespaces/kube-system/pods',
        list: () => kube.core.listNamespacedPod({namespace: 'kube-system'}),
        check: (pods) => (systemNotReady(pods.values()).length === 0 ? true : undefined),
        timeoutMs: left(),
        description: 'kube-system pods to be Running and Ready',
        signal,
      }),
    ),
  ])

  // What is true now, read once more after the waits.
  const [nodes, pods, now] = await Promise.all([kube.core.listNode(), kube.core.listNamespacedPod({namespace: 'kube-system'}), baseline ? recordHealth(kube) : undefined])
  const problems: string[] = []
  const nodeReport = request.nodes.map((planned) => {
    const live = nodes.items.find((n) => n.metadata?.name === planned.name)
    const after = live?.status?.nodeInfo?.kubeletVersion
    const ready = live !== undefined && isNodeReady(live)
    if (!live) problems.push(`node ${planned.name} is gone from the cluster`)
    else if (!ready || after !== request.target) problems.push(`node ${planned.name} is ${ready ? 'Ready' : 'NotReady'} at ${after} (wanted Ready at ${request.target})`)
    return {name: planned.name, before: planned.fromVersion, ...(after ? {after} : {}), ready}
  })
  const workloads: Verification['workloads'] = []
  for (const before of baseline?.records ?? []) {
    const current = now?.records.find((r) => healthKey(r) === healthKey(before))
    if (!current) continue
    if (current.available !== before.available) workloads.push({workload: healthKey(before), before: before.available, after: current.available, desired: current.desired})
    if (wasHealthy(before) && current.available < before.available) problems.push(`${healthKey(before)} has ${current.available} available, ${before.available} before the run`)
  }
  const kubeSystemNotReady = systemNotReady(pods.items).map((pod) => `${pod.metadata?.name} (${pod.status?.phase ?? 'no phase'}${pod.status?.phase === 'Running' ? ', not Ready' : ''})`)
  for (const pod of kubeSystemNotReady) problems.push(`kube-system pod ${pod} is not Running and Ready`)
  return {checkedAt: new Date().toISOString(), passed: problems.length === 0, nodes: nodeReport, workloads, kubeSystemNotReady, problems}
}
