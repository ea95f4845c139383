/**
 * ReplicaSet, Deployment and DaemonSet controllers, reduced to what a node upgrade exercises:
 * ReplicaSets keep `replicas` pods (new ones Pending until the scheduler binds them), a
 * Deployment owns one ReplicaSet per template, a DaemonSet keeps one pod on every eligible node
 * (cordoned ones included), and all three report status the way `kubectl rollout status` reads it.
 */
import {createHash} from 'node:crypto'
import {controllerRef, isPodReady, setCondition, type Taint, tolerates, type Toleration} from '../objects.js'
import type {ResourceType} from '../resources.js'
import type {StoreEvent} from '../store.js'
import {type Dict, type StoredObject, deepClone} from '../types.js'
import {deleteObject} from '../deletion.js'
import {Controller, type ControllerContext} from './base.js'
import {podFromTemplate} from './pod-template.js'

function ownedPods(pods: readonly StoredObject[], owner: StoredObject): StoredObject[] {
  return pods.filter((p) => controllerRef(p)?.uid === owner.metadata.uid)
}

function writeStatus(store: ControllerContext['store'], rt: ResourceType, obj: StoredObject, status: Dict, source: string): void {
  const next = {...(obj.status ?? {}), ...status}
  if (JSON.stringify(next) === JSON.stringify(obj.status ?? {})) return
  obj.status = next
  store.updateIn(rt, obj, {source})
}

/** Scale-down order upstream uses, roughly: unscheduled, then pending, then not ready, then newest. */
function deletionRank(p: StoredObject): number {
  if (!p.spec?.nodeName) return 0
  if (p.status?.phase === 'Pending') return 1
  if (!isPodReady(p)) return 2
  return 3
}

export class ReplicaSetController extends Controller {
  constructor(ctx: ControllerContext) {
    super(ctx, 'controller:replicaset')
  }

  protected interested(e: StoreEvent): boolean {
    return this.is(e, 'replicasets.apps', 'pods')
  }

  protected reconcile(): void {
    const rsRt = this.type('replicasets.apps')
    const podsRt = this.type('pods')
    // Only read here (pods are created and deleted by name): scanned, not copied.
    const pods = this.store.scanIn(podsRt)
    for (const rs of this.store.listIn(rsRt)) {
      if (rs.metadata.deletionTimestamp) continue
      const mine = ownedPods(pods, rs)
      const active = mine.filter((p) => !p.metadata.deletionTimestamp)
      const want = Number(rs.spec?.replicas ?? 1)
      if (active.length < want) {
        for (let i = active.length; i < want; i++) this.store.createIn(podsRt, podFromTemplate(rs), {source: this.source})
      } else if (active.length > want) {
        const victims = [...active].sort((a, b) => deletionRank(a) - deletionRank(b) || b.metadata.creationTimestamp.localeCompare(a.metadata.creationTimestamp))
        for (const p of victims.slice(0, active.length - want)) deleteObject(this.store, podsRt, p.metadata.namespace, p.metadata.name, {source: this.source})
      }
      // Listed again only when this pass created or deleted pods (a full copy of every pod per ReplicaSet otherwise).
      const after = active.length === want ? active : ownedPods(this.store.scanIn(podsRt, rs.metadata.namespace), rs).filter((p) => !p.metadata.deletionTimestamp)
      const ready = after.filter(isPodReady).length
      writeStatus(
        this.store,
        rsRt,
        rs,
        {replicas: after.length, fullyLabeledReplicas: after.length, readyReplicas: ready, availableReplicas: ready, observedGeneration: rs.metadata.generation},
        this.source,
      )
    }
  }
}

function templateHash(template: unknown): string {
  const hex = createHash('sha256').update(JSON.stringify(template ?? {})).digest('hex')
  // Upstream's pod-template-hash is a short base36-ish string; shape matters more than value.
  return BigInt(`0x${hex.slice(0, 15)}`).toString(36).slice(0, 10).replace(/[aeiou]/g, 'x')
}

export class DeploymentController extends Controller {
  constructor(ctx: ControllerContext) {
    super(ctx, 'controller:deployment')
  }

  protected interested(e: StoreEvent): boolean {
    return this.is(e, 'deployments.apps', 'replicasets.apps')
  }

  protected reconcile(): void {
    const depRt = this.type('deployments.apps')
    const rsRt = this.type('replicasets.apps')
    for (const dep of this.store.listIn(depRt)) {
      if (dep.metadata.deletionTimestamp) continue
      const hash = templateHash(dep.spec?.template)
      const all = this.store.listIn(rsRt, dep.metadata.namespace).filter((rs) => controllerRef(rs)?.uid === dep.metadata.uid)
      let current = all.find((rs) => rs.metadata.labels?.['pod-template-hash'] === hash)
      const want = Number(dep.spec?.replicas ?? 1)
      if (!current) {
        const template = deepClone((dep.spec?.template ?? {}) as Dict)
        template.metadata = {...(template.metadata ?? {}), labels: {...(template.metadata?.labels ?? {}), 'pod-template-hash': hash}}
        const selector = deepClone((dep.spec?.selector ?? {}) as Dict)
        selector.matchLabels = {...(selector.matchLabels ?? {}), 'pod-template-hash': hash}
        current = this.store.createIn(
          rsRt,
          {
            apiVersion: 'apps/v1',
            kind: 'ReplicaSet',
            metadata: {
              name: `${dep.metadata.name}-${hash}`,
              namespace: dep.metadata.namespace,
              labels: template.metadata.labels,
              annotations: {'deployment.kubernetes.io/desired-replicas': String(want), 'deployment.kubernetes.io/revision': String(all.length + 1)},
              ownerReferences: [{apiVersion: 'apps/v1', kind: 'Deployment', name: dep.metadata.name, uid: dep.metadata.uid, controller: true, blockOwnerDeletion: true}],
            },
            spec: {replicas: want, selector, template},
          },
          {source: this.source},
        )
      } else if (Number(current.spec?.replicas) !== want) {
        current.spec = {...current.spec, replicas: want}
        current = this.store.updateIn(rsRt, current, {source: this.source})
      }
      for (const old of all) {
        if (old.metadata.uid === current.metadata.uid || Number(old.spec?.replicas ?? 0) === 0) continue
        old.spec = {...old.spec, replicas: 0}
        this.store.updateIn(rsRt, old, {source: this.source})
      }
      const sets = this.store.listIn(rsRt, dep.metadata.namespace).filter((rs) => controllerRef(rs)?.uid === dep.metadata.uid)
      const sum = (f: string) => sets.reduce((n, rs) => n + Number(rs.status?.[f] ?? 0), 0)
      const available = sum('availableReplicas')
      const updated = Number(sets.find((rs) => rs.metadata.uid === current!.metadata.uid)?.status?.replicas ?? 0)
      const next = deepClone(dep)
      next.status = {
        ...(dep.status ?? {}),
        observedGeneration: dep.metadata.generation,
        replicas: sum('replicas'),
        updatedReplicas: updated,
        readyReplicas: sum('readyReplicas'),
        availableReplicas: available,
        ...(want - available > 0 ? {unavailableReplicas: want - available} : {}),
      }
      if (want - available <= 0) delete next.status.unavailableReplicas
      setCondition(next, available >= want ? {type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable', message: 'Deployment has minimum availability.'} : {type: 'Available', status: 'False', reason: 'MinimumReplicasUnavailable', message: 'Deployment does not have minimum availability.'}, ['lastUpdateTime'])
      setCondition(
        next,
        updated === want && available >= want
          ? {type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable', message: `ReplicaSet "${current.metadata.name}" has successfully progressed.`}
          : {type: 'Progressing', status: 'True', reason: 'ReplicaSetUpdated', message: `ReplicaSet "${current.metadata.name}" is progressing.`},
        ['lastUpdateTime'],
      )
      if (JSON.stringify(next.status) !== JSON.stringify(dep.status)) this.store.updateIn(depRt, next, {source: this.source})
    }
  }
}

/** Tolerations the DaemonSet controller adds to every daemon pod. */
const daemonTolerations: Toleration[] = [
  {key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute'},
  {key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute'},
  {key: 'node.kubernetes.io/disk-pressure', operator: 'Exists', effect: 'NoSchedule'},
  {key: 'node.kubernetes.io/memory-pressure', operator: 'Exists', effect: 'NoSchedule'},
  {key: 'node.kubernetes.io/pid-pressure', operator: 'Exists', effect: 'NoSchedule'},
  {key: 'node.kubernetes.io/unschedulable', operator: 'Exists', effect: 'NoSchedule'},
]

export class DaemonSetController extends Controller {
  constructor(ctx: ControllerContext) {
    super(ctx, 'controller:daemonset')
  }

  protected interested(e: StoreEvent): boolean {
    return this.is(e, 'daemonsets.apps', 'pods', 'nodes')
  }

  private eligible(ds: StoredObject, node: StoredObject): boolean {
    const selector = (ds.spec?.template?.spec?.nodeSelector ?? {}) as Record<string, string>
    const labels = node.metadata.labels ?? {}
    if (!Object.entries(selector).every(([k, v]) => labels[k] === v)) return false
    const tolerations = [...((ds.spec?.template?.spec?.tolerations ?? []) as Toleration[]), ...daemonTolerations]
    const condition = ['node.kubernetes.io/unschedulable', 'node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable']
    return ((node.spec?.taints ?? []) as Taint[]).every((t) => t.effect === 'PreferNoSchedule' || condition.includes(t.key) || tolerates(tolerations, t))
  }

  protected reconcile(): void {
    const dsRt = this.type('daemonsets.apps')
    const podsRt = this.type('pods')
    // Nodes and pods are only read (pods are created and deleted by name): scanned, not copied.
    const nodes = this.store.scanIn(this.type('nodes'))
    for (const ds of this.store.listIn(dsRt)) {
      if (ds.metadata.deletionTimestamp) continue
      const mine = ownedPods(this.store.scanIn(podsRt, ds.metadata.namespace), ds)
      const wanted = nodes.filter((n) => this.eligible(ds, n))
      for (const node of wanted) {
        const here = mine.filter((p) => p.spec?.nodeName === node.metadata.name)
        // A daemon pod still terminating blocks its replacement, as upstream.
        if (here.length > 0) continue
        const pod = podFromTemplate(ds, {nodeName: node.metadata.name, tolerations: daemonTolerations, labels: {'controller-revision-hash': templateHash(ds.spec?.template)}})
        pod.spec!.affinity = {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchFields: [{key: 'metadata.name', operator: 'In', values: [node.metadata.name]}]}]}}}
        this.store.createIn(podsRt, pod, {source: this.source})
      }
      for (const p of mine) {
        if (p.metadata.deletionTimestamp || wanted.some((n) => n.metadata.name === p.spec?.nodeName)) continue
        deleteObject(this.store, podsRt, p.metadata.namespace, p.metadata.name, {source: this.source})
      }
      const active = ownedPods(this.store.scanIn(podsRt, ds.metadata.namespace), ds).filter((p) => !p.metadata.deletionTimestamp)
      const ready = active.filter(isPodReady).length
      writeStatus(
        this.store,
        dsRt,
        ds,
        {
          desiredNumberScheduled: wanted.length,
          currentNumberScheduled: active.length,
          updatedNumberScheduled: active.length,
          numberMisscheduled: 0,
          numberReady: ready,
          numberAvailable: ready,
          ...(wanted.length - ready > 0 ? {numberUnavailable: wanted.length - ready} : {numberUnavailable: 0}),
          observedGeneration: ds.metadata.generation,
        },
        this.source,
      )
    }
  }
}

