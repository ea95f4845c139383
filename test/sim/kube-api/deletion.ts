/**
 * Deletion semantics shared by the request handlers and the simulated controllers: pods are
 * deleted gracefully (they keep a deletionTimestamp until their kubelet confirms), namespaces
 * go Terminating and are emptied by the namespace controller, everything else goes at once.
 */
import type {ResourceType} from './resources.js'
import {errors} from './status.js'
import type {ObjectStore} from './store.js'
import {type Dict, type StoredObject, isoIn} from './types.js'

export interface DeleteOptions {
  gracePeriodSeconds?: number
  propagationPolicy?: 'Orphan' | 'Background' | 'Foreground'
  preconditions?: {uid?: string; resourceVersion?: string}
  dryRun?: boolean
  source: string
}

/** The pod's own grace period, as the apiserver computes it before asking the kubelet. */
export function effectiveGracePeriod(pod: StoredObject, requested: number | undefined): number {
  // Never scheduled, or already finished: nothing to stop, so it goes at once (upstream does the same).
  if (!pod.spec?.nodeName) return 0
  if (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') return 0
  const grace = requested ?? pod.spec?.terminationGracePeriodSeconds ?? 30
  return grace < 0 ? 1 : grace
}

export function deleteObject(store: ObjectStore, rt: ResourceType, namespace: string | undefined, name: string, opts: DeleteOptions): StoredObject {
  const existing = store.getIn(rt, namespace, name)
  if (!existing) throw errors.notFound(rt, name)
  const pre = opts.preconditions
  if (pre?.uid && pre.uid !== existing.metadata.uid) {
    throw errors.conflict(rt, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${existing.metadata.uid}`)
  }
  if (pre?.resourceVersion && pre.resourceVersion !== existing.metadata.resourceVersion) {
    throw errors.conflict(rt, name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in meta: ${existing.metadata.resourceVersion}`)
  }
  const write = {source: opts.source, dryRun: opts.dryRun}

  if (opts.propagationPolicy === 'Orphan' && !opts.dryRun) orphanDependents(store, existing.metadata.uid, opts.source)

  if (rt.group === '' && rt.resource === 'pods') {
    const grace = effectiveGracePeriod(existing, opts.gracePeriodSeconds)
    if (grace === 0) return store.removeIn(rt, namespace, name, write)
    const current = existing.metadata.deletionGracePeriodSeconds
    if (existing.metadata.deletionTimestamp && current !== undefined && current <= grace) return existing
    existing.metadata.deletionTimestamp = isoIn(grace)
    existing.metadata.deletionGracePeriodSeconds = grace
    return store.updateIn(rt, existing, write)
  }

  if (rt.group === '' && rt.resource === 'namespaces') {
    if (existing.metadata.deletionTimestamp) return existing
    existing.metadata.deletionTimestamp = isoIn(0)
    existing.metadata.deletionGracePeriodSeconds = 0
    existing.status = {...(existing.status ?? {}), phase: 'Terminating'}
    return store.updateIn(rt, existing, write)
  }

  return store.removeIn(rt, namespace, name, write)
}

function orphanDependents(store: ObjectStore, ownerUid: string, source: string): void {
  for (const rt of store.registry.all().filter((t) => t.storage)) {
    for (const o of store.listIn(rt)) {
      const refs = (o.metadata.ownerReferences ?? []) as Dict[]
      if (!refs.some((r) => r.uid === ownerUid)) continue
      o.metadata.ownerReferences = refs.filter((r) => r.uid !== ownerUid) as StoredObject['metadata']['ownerReferences']
      if (o.metadata.ownerReferences?.length === 0) delete o.metadata.ownerReferences
      store.updateIn(rt, o, {source})
    }
  }
}
