/**
 * The scheduler binds pending pods to the least loaded node that fits (Ready, not cordoned,
 * taints tolerated, nodeSelector matched). It also keeps the condition taints in line with each
 * node, as upstream's node lifecycle controller does: `node.kubernetes.io/unschedulable` while
 * cordoned, `not-ready` / `unreachable` while the Ready condition is False / Unknown.
 */
import {getCondition, podFitsNode, setCondition, type Taint} from '../objects.js'
import type {StoreEvent} from '../store.js'
import {type StoredObject, nowIso} from '../types.js'
import {Controller, type ControllerContext} from './base.js'

export interface SchedulerOptions {
  /** Keep the unschedulable / not-ready / unreachable taints in line with the node (default true). */
  manageTaints: boolean
}

const conditionTaints = ['node.kubernetes.io/unschedulable', 'node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable']

function desiredTaints(node: StoredObject): Taint[] {
  const out: Taint[] = []
  if (node.spec?.unschedulable === true) out.push({key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule'})
  const ready = getCondition(node, 'Ready')?.status
  if (ready === 'False') out.push({key: 'node.kubernetes.io/not-ready', effect: 'NoSchedule'})
  if (ready === 'Unknown') out.push({key: 'node.kubernetes.io/unreachable', effect: 'NoSchedule'})
  return out
}

export class Scheduler extends Controller {
  constructor(
    ctx: ControllerContext,
    readonly options: SchedulerOptions = {manageTaints: true},
  ) {
    super(ctx, 'controller:scheduler')
  }

  protected interested(e: StoreEvent): boolean {
    return this.is(e, 'pods', 'nodes')
  }

  protected reconcile(): void {
    const nodesRt = this.type('nodes')
    const podsRt = this.type('pods')
    // Nodes and pods are scanned, not copied; the few that change are copied first.
    let nodes = this.store.scanIn(nodesRt)
    if (this.options.manageTaints) nodes = nodes.map((n) => this.syncTaints(n))

    const pods = this.store.scanIn(podsRt)
    const load = new Map<string, number>(nodes.map((n) => [n.metadata.name, 0]))
    for (const p of pods) if (p.spec?.nodeName && !p.metadata.deletionTimestamp) load.set(p.spec.nodeName, (load.get(p.spec.nodeName) ?? 0) + 1)

    for (const stored of pods) {
      if (stored.spec?.nodeName || stored.metadata.deletionTimestamp) continue
      if (stored.spec?.schedulerName && stored.spec.schedulerName !== 'default-scheduler') continue
      const pod = this.store.copyOf(podsRt, stored)
      const fits = nodes.filter((n) => podFitsNode(pod, n)).sort((a, b) => (load.get(a.metadata.name)! - load.get(b.metadata.name)!) || a.metadata.name.localeCompare(b.metadata.name))
      const target = fits[0]
      if (target) {
        pod.spec = {...pod.spec, nodeName: target.metadata.name}
        setCondition(pod, {type: 'PodScheduled', status: 'True'})
        load.set(target.metadata.name, (load.get(target.metadata.name) ?? 0) + 1)
        this.store.updateIn(podsRt, pod, {source: this.source})
      } else {
        const unschedulable = nodes.filter((n) => n.spec?.unschedulable === true).length
        const notReady = nodes.filter((n) => getCondition(n, 'Ready')?.status !== 'True').length
        const reasons = [
          unschedulable ? `${unschedulable} node(s) were unschedulable` : '',
          notReady ? `${notReady} node(s) had untolerated taint {node.kubernetes.io/not-ready: }` : '',
        ].filter(Boolean)
        const message = `0/${nodes.length} nodes are available${reasons.length ? `: ${reasons.join(', ')}` : ''}. preemption: 0/${nodes.length} nodes are available.`
        if (setCondition(pod, {type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message})) this.store.updateIn(podsRt, pod, {source: this.source})
      }
    }
  }

  private syncTaints(node: StoredObject): StoredObject {
    const current = (node.spec?.taints ?? []) as Taint[]
    const want = desiredTaints(node)
    const kept = current.filter((t) => !conditionTaints.includes(t.key) || want.some((w) => w.key === t.key && w.effect === t.effect))
    const added = want.filter((w) => !current.some((t) => t.key === w.key && t.effect === w.effect)).map((w) => ({...w, timeAdded: nowIso()}))
    if (added.length === 0 && kept.length === current.length) return node
    const taints = [...kept, ...added]
    node = this.store.copyOf(this.type('nodes'), node)
    node.spec = {...(node.spec ?? {})}
    if (taints.length > 0) node.spec.taints = taints
    else delete node.spec.taints
    return this.store.updateIn(this.type('nodes'), node, {source: 'controller:node-lifecycle'})
  }
}
