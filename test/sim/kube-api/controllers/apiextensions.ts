/**
 * What the apiextensions apiserver does with a CustomResourceDefinition: serve its resources as
 * soon as it is stored, report it Established, and on deletion stop serving them and drop the
 * objects.
 */
import {typesFromCrd} from '../resources.js'
import type {StoreEvent} from '../store.js'
import type {Dict} from '../types.js'
import {setCondition} from '../objects.js'
import {Controller, type ControllerContext} from './base.js'

export class CrdController extends Controller {
  constructor(ctx: ControllerContext) {
    super(ctx, 'controller:apiextensions')
    // Serving must follow the store synchronously: a client that created the CRD may use it next.
    ctx.store.on((e) => this.serve(e))
  }

  private serve(e: StoreEvent): void {
    if (!this.is(e, 'customresourcedefinitions.apiextensions.k8s.io')) return
    const name = e.object.metadata.name
    if (e.type === 'DELETED') {
      const gone = this.ctx.registry.all().filter((t) => !t.builtin && `${t.resource}.${t.group}` === name)
      const storage = gone.find((t) => t.storage) ?? gone[0]
      // Drop the objects while their type is still known, then stop serving it.
      if (storage) this.store.dropAll(storage, {source: this.source})
      this.ctx.registry.setCustom(name, [])
    } else {
      this.ctx.registry.setCustom(name, typesFromCrd(e.object))
    }
  }

  protected interested(e: StoreEvent): boolean {
    return this.is(e, 'customresourcedefinitions.apiextensions.k8s.io') && e.type !== 'DELETED'
  }

  protected reconcile(): void {
    const rt = this.type('customresourcedefinitions.apiextensions.k8s.io')
    for (const crd of this.store.listIn(rt)) {
      const spec = crd.spec ?? {}
      let changed = setCondition(crd, {type: 'NamesAccepted', status: 'True', reason: 'NoConflicts', message: 'no conflicts found'})
      changed = setCondition(crd, {type: 'Established', status: 'True', reason: 'InitialNamesAccepted', message: 'the initial names have been accepted'}) || changed
      const stored = ((spec.versions ?? []) as Dict[]).filter((v) => v.storage).map((v) => v.name)
      const accepted = spec.names ?? {}
      if (JSON.stringify(crd.status?.acceptedNames) !== JSON.stringify(accepted)) {
        crd.status = {...crd.status, acceptedNames: accepted}
        changed = true
      }
      const prev = (crd.status?.storedVersions ?? []) as string[]
      const merged = [...new Set([...prev, ...stored])]
      if (merged.length !== prev.length) {
        crd.status = {...crd.status, storedVersions: merged}
        changed = true
      }
      if (changed) this.store.updateIn(rt, crd, {source: this.source})
    }
  }
}
