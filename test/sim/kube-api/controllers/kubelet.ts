/**
 * Every node's kubelet at once. A kubelet is "up" while its node is Ready. It starts bound
 * pods (Pending → Running and Ready after `podStartupDelayMs`), confirms graceful deletions
 * (after the shorter of the pod's grace period and `terminationDelayMs`, and only while up),
 * and while its node is not Ready the pods there are reported not ready (upstream's node
 * lifecycle controller does that part). Pods whose node was deleted are removed (pod GC).
 */
import {isNodeReady, isPodReady, setCondition} from '../objects.js'
import type {StoreEvent} from '../store.js'
import {type Dict, type StoredObject, nowIso} from '../types.js'
import {Controller, type ControllerContext} from './base.js'

export interface KubeletOptions {
  /** Pending → Running+Ready, once bound to a Ready node. */
  podStartupDelayMs: number
  /** Upper bound on how long a deleted pod takes to stop (its grace period is the other bound). */
  terminationDelayMs: number
}

/**
 * How a workload's pods behave on some nodes: `never` Ready there (a new kubelet or runtime the
 * app does not survive), or Ready only `delayMs` after they start. Matched by labels, and by
 * the node's kubelet version when `onVersion` is given ("on upgraded nodes").
 */
export interface PodReadinessRule {
  namespace?: string
  matchLabels: Record<string, string>
  onVersion?: string
  never?: boolean
  delayMs?: number
}

export class Kubelet extends Controller {
  /** Pods whose status a test controls: the kubelet leaves their phase and readiness alone. */
  readonly pinned = new Set<string>()
  /** Readiness rules, first match wins; a test adds them while the simulation runs. */
  readonly readiness: PodReadinessRule[] = []
  private readonly starting = new Map<string, () => void>()
  private readonly stopping = new Map<string, () => void>()
  /** Nodes seen deleted: their pods are garbage (upstream's pod GC); a node never added is not. */
  private readonly deletedNodes = new Set<string>()
  private ipCounter = 10

  constructor(
    ctx: ControllerContext,
    readonly options: KubeletOptions,
  ) {
    super(ctx, 'controller:kubelet')
  }

  protected interested(e: StoreEvent): boolean {
    if (this.is(e, 'nodes')) {
      if (e.type === 'DELETED') this.deletedNodes.add(e.object.metadata.name)
      else this.deletedNodes.delete(e.object.metadata.name)
    }
    return this.is(e, 'pods', 'nodes')
  }

  override stop(): void {
    super.stop()
    for (const c of [...this.starting.values(), ...this.stopping.values()]) c()
    this.starting.clear()
    this.stopping.clear()
  }

  protected reconcile(): void {
    const podsRt = this.type('pods')
    // Scanned, not copied (a thousand pods on every pod or node event); a pod is copied before it changes.
    const nodes = new Map(this.store.scanIn(this.type('nodes')).map((n) => [n.metadata.name, n]))
    for (const pod of this.store.scanIn(podsRt)) {
      const nodeName = pod.spec?.nodeName as string | undefined
      if (!nodeName) continue
      const uid = pod.metadata.uid
      const node = nodes.get(nodeName)
      if (!node) {
        if (this.deletedNodes.has(nodeName)) this.store.removeIn(podsRt, pod.metadata.namespace, pod.metadata.name, {source: 'controller:pod-gc'})
        continue
      }
      const up = isNodeReady(node)
      if (pod.metadata.deletionTimestamp) {
        this.cancel(this.starting, uid)
        if (up && !this.stopping.has(uid)) this.scheduleRemoval(pod)
        continue
      }
      if (this.pinned.has(uid)) continue
      const phase = pod.status?.phase
      if (!up) {
        this.cancel(this.starting, uid)
        if (phase === 'Running' && isPodReady(pod)) this.setReady(this.store.copyOf(podsRt, pod), false)
        continue
      }
      if ((phase === 'Pending' || phase === undefined || (phase === 'Running' && !isPodReady(pod))) && !this.starting.has(uid)) {
        const rule = this.ruleFor(pod, node)
        if (rule?.never) {
          if (phase !== 'Running') this.runUnready(this.store.copyOf(podsRt, pod), node)
          continue
        }
        this.starting.set(
          uid,
          this.ctx.timers.after(this.options.podStartupDelayMs + (rule?.delayMs ?? 0), () => {
            this.starting.delete(uid)
            this.start_(pod.metadata.namespace, pod.metadata.name, uid, node)
          }, 'kubelet-start'),
        )
      }
    }
  }

  private ruleFor(pod: StoredObject, node: StoredObject): PodReadinessRule | undefined {
    const labels = (pod.metadata.labels ?? {}) as Record<string, string>
    const version = node.status?.nodeInfo?.kubeletVersion
    return this.readiness.find(
      (r) => (r.namespace === undefined || r.namespace === pod.metadata.namespace) && Object.entries(r.matchLabels).every(([k, v]) => labels[k] === v) && (r.onVersion === undefined || r.onVersion === version),
    )
  }

  /** Started, but its readiness probe never passes. */
  private runUnready(pod: StoredObject, node: StoredObject): void {
    const status = (pod.status ??= {}) as Dict
    status.phase = 'Running'
    status.hostIP = ((node.status?.addresses ?? []) as Dict[]).find((a) => a.type === 'InternalIP')?.address ?? '127.0.0.1'
    status.startTime = nowIso()
    setCondition(pod, {type: 'PodScheduled', status: 'True'})
    setCondition(pod, {type: 'Initialized', status: 'True'})
    setCondition(pod, {type: 'ContainersReady', status: 'False', reason: 'ContainersNotReady'})
    setCondition(pod, {type: 'Ready', status: 'False', reason: 'ContainersNotReady'})
    this.store.updateIn(this.type('pods'), pod, {source: this.source})
  }

  private cancel(map: Map<string, () => void>, uid: string): void {
    map.get(uid)?.()
    map.delete(uid)
  }

  private scheduleRemoval(pod: StoredObject): void {
    const uid = pod.metadata.uid
    const graceMs = (pod.metadata.deletionGracePeriodSeconds ?? 30) * 1000
    this.stopping.set(
      uid,
      this.ctx.timers.after(Math.min(graceMs, this.options.terminationDelayMs), () => {
        this.stopping.delete(uid)
        const podsRt = this.type('pods')
        const current = this.store.getIn(podsRt, pod.metadata.namespace, pod.metadata.name)
        if (!current || current.metadata.uid !== uid) return
        const node = this.store.getIn(this.type('nodes'), undefined, String(current.spec?.nodeName))
        // A kubelet that is down confirms nothing; the next reconcile after it is back will.
        if (node && !isNodeReady(node)) return
        this.store.removeIn(podsRt, current.metadata.namespace, current.metadata.name, {source: this.source})
      }, 'kubelet-stop'),
    )
  }

  private start_(namespace: string | undefined, name: string, uid: string, node: StoredObject): void {
    if (this.isPaused) return
    const podsRt = this.type('pods')
    const pod = this.store.getIn(podsRt, namespace, name)
    if (!pod || pod.metadata.uid !== uid || pod.metadata.deletionTimestamp || this.pinned.has(uid)) return
    const current = this.store.getIn(this.type('nodes'), undefined, node.metadata.name)
    if (!isNodeReady(current)) return
    const status = (pod.status ??= {}) as Dict
    if (status.phase !== 'Running') {
      const hostIP = ((current?.status?.addresses ?? []) as Dict[]).find((a) => a.type === 'InternalIP')?.address ?? '127.0.0.1'
      status.phase = 'Running'
      status.hostIP = hostIP
      status.hostIPs = [{ip: hostIP}]
      status.podIP = `10.42.${(this.ipCounter >> 8) & 255}.${this.ipCounter & 255}`
      status.podIPs = [{ip: status.podIP}]
      this.ipCounter++
      status.startTime = nowIso()
    }
    this.setReady(pod, true)
  }

  private setReady(pod: StoredObject, ready: boolean): void {
    const s = ready ? 'True' : 'False'
    setCondition(pod, {type: 'PodScheduled', status: 'True'})
    setCondition(pod, {type: 'Initialized', status: 'True'})
    setCondition(pod, {type: 'ContainersReady', status: s, ...(ready ? {} : {reason: 'NodeNotReady'})})
    setCondition(pod, {type: 'Ready', status: s, ...(ready ? {} : {reason: 'NodeNotReady'})})
    const containers = (pod.spec?.containers ?? []) as Dict[]
    pod.status!.containerStatuses = containers.map((c) => ({
      name: c.name,
      image: c.image,
      imageID: '',
      ready,
      started: true,
      restartCount: 0,
      state: {running: {startedAt: pod.status?.startTime ?? nowIso()}},
    }))
    this.store.updateIn(this.type('pods'), pod, {source: this.source})
  }
}
