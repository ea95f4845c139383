/**
 * The disruption controller: computes each PodDisruptionBudget's status from the pods it
 * selects, the way upstream does (expected pods from the owning controllers' scale for
 * percentages and maxUnavailable, only Ready non-terminating pods count as healthy, pods
 * recently evicted stay out of the count), optionally after a delay so the "still being
 * processed" window can be tested.
 */
import {controllerRef, isPodReady, setCondition} from '../objects.js'
import {fromLabelSelector, matchesLabels} from '../selectors.js'
import type {StoreEvent} from '../store.js'
import {type Dict, type StoredObject, deepClone} from '../types.js'
import {Controller, type ControllerContext} from './base.js'

export interface DisruptionOptions {
  /** Time between a pod/PDB change and the recomputed status. */
  delayMs: number
}

/** Upstream forgets an eviction it has not seen happen after two minutes. */
const disruptedPodTimeoutMs = 2 * 60 * 1000

/** intstr: an int, or a percentage of `total` (rounded up, as upstream does for PDBs). */
function scaled(value: unknown, total: number): number {
  if (typeof value === 'number') return value
  const m = String(value).match(/^(\d+)%$/)
  if (m) return Math.ceil((Number(m[1]) * total) / 100)
  return Number(value) || 0
}

export class DisruptionController extends Controller {
  constructor(
    ctx: ControllerContext,
    readonly options: DisruptionOptions = {delayMs: 0},
  ) {
    super(ctx, 'controller:disruption')
  }

  protected override reconcileDelayMs(): number {
    return this.options.delayMs
  }

  protected interested(e: StoreEvent): boolean {
    if (this.is(e, 'pods')) return true
    // Our own status writes change nothing the computation depends on.
    return this.is(e, 'poddisruptionbudgets.policy') && e.source !== this.source
  }

  /** The pods' controllers' desired scale, summed once per controller. */
  private expectedScale(pods: StoredObject[]): number {
    const seen = new Map<string, number>()
    let uncontrolled = 0
    for (const p of pods) {
      const ref = controllerRef(p)
      if (!ref) {
        uncontrolled++
        continue
      }
      if (seen.has(ref.uid)) continue
      seen.set(ref.uid, this.scaleOf(ref.kind, p.metadata.namespace, ref.name))
    }
    return [...seen.values()].reduce((a, b) => a + b, 0) + uncontrolled
  }

  private scaleOf(kind: string, namespace: string | undefined, name: string): number {
    switch (kind) {
      case 'ReplicaSet': {
        const rs = this.store.getIn(this.type('replicasets.apps'), namespace, name)
        const dep = rs && controllerRef(rs)?.kind === 'Deployment' ? this.store.getIn(this.type('deployments.apps'), namespace, controllerRef(rs)!.name) : undefined
        return Number(dep?.spec?.replicas ?? rs?.spec?.replicas ?? 0)
      }
      case 'StatefulSet':
        return Number(this.store.getIn(this.type('statefulsets.apps'), namespace, name)?.spec?.replicas ?? 0)
      case 'DaemonSet':
        return Number(this.store.getIn(this.type('daemonsets.apps'), namespace, name)?.status?.desiredNumberScheduled ?? 0)
      case 'Job':
        return Number(this.store.getIn(this.type('jobs.batch'), namespace, name)?.spec?.parallelism ?? 1)
      default:
        return 1
    }
  }

  protected reconcile(): void {
    const pdbRt = this.type('poddisruptionbudgets.policy')
    const podsRt = this.type('pods')
    const now = Date.now()
    for (const pdb of this.store.listIn(pdbRt)) {
      const selector = fromLabelSelector(pdb.spec?.selector)
      const pods = this.store.listIn(podsRt, pdb.metadata.namespace).filter((p) => matchesLabels(selector, p.metadata.labels))
      const disrupted = {...((pdb.status?.disruptedPods ?? {}) as Record<string, string>)}
      for (const [podName, at] of Object.entries(disrupted)) {
        const pod = pods.find((p) => p.metadata.name === podName)
        if (!pod || pod.metadata.deletionTimestamp || Date.parse(at) + disruptedPodTimeoutMs < now) delete disrupted[podName]
      }
      const healthy = pods.filter((p) => !p.metadata.deletionTimestamp && !(p.metadata.name in disrupted) && isPodReady(p)).length

      let expected: number
      let desired: number
      const spec = pdb.spec ?? {}
      if (spec.maxUnavailable !== undefined) {
        expected = this.expectedScale(pods)
        desired = Math.max(0, expected - scaled(spec.maxUnavailable, expected))
      } else if (typeof spec.minAvailable === 'number') {
        expected = pods.length
        desired = spec.minAvailable
      } else if (spec.minAvailable !== undefined) {
        expected = this.expectedScale(pods)
        desired = scaled(spec.minAvailable, expected)
      } else {
        expected = pods.length
        desired = pods.length
      }
      const allowed = Math.max(0, healthy - desired)
      const next = deepClone(pdb)
      const status: Dict = {
        ...(pdb.status ?? {}),
        observedGeneration: pdb.metadata.generation,
        currentHealthy: healthy,
        desiredHealthy: desired,
        expectedPods: expected,
        disruptionsAllowed: allowed,
      }
      if (Object.keys(disrupted).length > 0) status.disruptedPods = disrupted
      else delete status.disruptedPods
      next.status = status
      setCondition(
        next,
        allowed > 0
          ? {type: 'DisruptionAllowed', status: 'True', reason: 'SufficientPods', message: ''}
          : {type: 'DisruptionAllowed', status: 'False', reason: 'InsufficientPods', message: ''},
      )
      ;(next.status!.conditions as Dict[]).forEach((c) => (c.observedGeneration = pdb.metadata.generation))
      if (JSON.stringify(next.status) !== JSON.stringify(pdb.status)) this.store.updateIn(pdbRt, next, {source: this.source})
    }
  }
}
