/**
 * The garbage collector (dependents of a deleted owner are deleted in the background) and the
 * namespace controller (a Terminating namespace is emptied, then removed).
 */
import {deleteObject} from '../deletion.js'
import type {ResourceType} from '../resources.js'
import type {StoreEvent} from '../store.js'
import type {StoredObject} from '../types.js'
import {Controller, type ControllerContext} from './base.js'

/**
 * Unlike upstream, only owners seen deleted count as gone: a test may reference an owner it
 * never created (a pod "owned by" a ReplicaSet that is not simulated) without losing the pod.
 */
export class GarbageCollector extends Controller {
  private readonly deletedUids = new Set<string>()

  constructor(ctx: ControllerContext) {
    super(ctx, 'controller:garbage-collector')
  }

  protected interested(e: StoreEvent): boolean {
    if (e.type === 'DELETED') {
      this.deletedUids.add(e.object.metadata.uid)
      return true
    }
    return this.is(e, 'namespaces') && !!e.object.metadata.deletionTimestamp
  }

  protected reconcile(): void {
    const types = this.ctx.registry.all().filter((t) => t.storage)
    const uids = new Set<string>()
    // Read-only passes over every object: scanned, not copied.
    for (const rt of types) for (const o of this.store.scanIn(rt)) uids.add(o.metadata.uid)

    for (const rt of types) {
      for (const o of this.store.scanIn(rt)) {
        const refs = o.metadata.ownerReferences ?? []
        if (refs.length === 0 || o.metadata.deletionTimestamp) continue
        if (refs.every((r) => !uids.has(r.uid)) && refs.some((r) => this.deletedUids.has(r.uid))) this.remove(rt, o)
      }
    }

    const nsRt = this.type('namespaces')
    for (const ns of this.store.listIn(nsRt)) {
      if (!ns.metadata.deletionTimestamp) continue
      let remaining = 0
      for (const rt of types.filter((t) => t.namespaced)) {
        for (const o of this.store.listIn(rt, ns.metadata.name)) {
          remaining++
          if (!o.metadata.deletionTimestamp) this.remove(rt, o)
        }
      }
      if (remaining === 0) this.store.removeIn(nsRt, undefined, ns.metadata.name, {source: 'controller:namespace'})
      else this.kick(50)
    }
  }

  private remove(rt: ResourceType, o: StoredObject): void {
    if (!this.store.getIn(rt, o.metadata.namespace, o.metadata.name)) return
    deleteObject(this.store, rt, o.metadata.namespace, o.metadata.name, {source: this.source})
  }
}
