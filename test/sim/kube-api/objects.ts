/** Small readers and writers of object fields the controllers share. */
import type {Dict, KubeObject, OwnerReference, StoredObject} from './types.js'
import {nowIso} from './types.js'

export function getCondition(obj: KubeObject | undefined, type: string): Dict | undefined {
  return ((obj?.status?.conditions ?? []) as Dict[]).find((c) => c.type === type)
}

/** Sets a condition; lastTransitionTime moves only when the status changes. Returns true if anything changed. */
export function setCondition(obj: KubeObject, cond: {type: string; status: string; reason?: string; message?: string}, extraTimes: string[] = []): boolean {
  obj.status ??= {}
  const list = ((obj.status.conditions ??= []) as Dict[])
  const now = nowIso()
  const existing = list.find((c) => c.type === cond.type)
  if (existing && existing.status === cond.status && existing.reason === cond.reason && existing.message === cond.message) return false
  const next: Dict = {...(existing ?? {}), ...cond}
  if (!existing || existing.status !== cond.status) next.lastTransitionTime = now
  for (const t of extraTimes) next[t] = now
  if (existing) list[list.indexOf(existing)] = next
  else list.push(next)
  return true
}

export function isPodReady(pod: KubeObject): boolean {
  return getCondition(pod, 'Ready')?.status === 'True'
}

export function isNodeReady(node: KubeObject | undefined): boolean {
  return getCondition(node, 'Ready')?.status === 'True'
}

export function isTerminating(obj: KubeObject): boolean {
  return !!obj.metadata.deletionTimestamp
}

export function controllerRef(obj: KubeObject): OwnerReference | undefined {
  return obj.metadata.ownerReferences?.find((r) => r.controller)
}

export function ownerReferenceTo(owner: StoredObject): OwnerReference {
  return {apiVersion: owner.apiVersion, kind: owner.kind, name: owner.metadata.name, uid: owner.metadata.uid, controller: true, blockOwnerDeletion: true}
}

export interface Taint {
  key: string
  value?: string
  effect: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute'
  timeAdded?: string
}

export interface Toleration {
  key?: string
  operator?: 'Exists' | 'Equal'
  value?: string
  effect?: string
  tolerationSeconds?: number
}

export function tolerates(tolerations: Toleration[] | undefined, taint: Taint): boolean {
  return (tolerations ?? []).some((t) => {
    if (t.effect && t.effect !== taint.effect) return false
    if (t.operator === 'Exists') return !t.key || t.key === taint.key
    return t.key === taint.key && (t.value ?? '') === (taint.value ?? '')
  })
}

/** A pod fits a node: Ready, schedulable, selector matches, every NoSchedule/NoExecute taint tolerated. */
export function podFitsNode(pod: KubeObject, node: KubeObject): boolean {
  if (!isNodeReady(node) || node.spec?.unschedulable === true) {
    // DaemonSet-style pods tolerate the taints that express these states; others do not fit.
    const taints: Taint[] = []
    if (node.spec?.unschedulable === true) taints.push({key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule'})
    if (!isNodeReady(node)) taints.push({key: 'node.kubernetes.io/not-ready', effect: 'NoSchedule'})
    if (!taints.every((t) => tolerates(pod.spec?.tolerations, t))) return false
  }
  for (const taint of (node.spec?.taints ?? []) as Taint[]) {
    if (taint.effect === 'PreferNoSchedule') continue
    if (!tolerates(pod.spec?.tolerations, taint)) return false
  }
  const selector = (pod.spec?.nodeSelector ?? {}) as Record<string, string>
  const labels = node.metadata.labels ?? {}
  return Object.entries(selector).every(([k, v]) => labels[k] === v)
}
