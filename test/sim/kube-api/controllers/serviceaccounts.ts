/** Every active namespace gets a `default` ServiceAccount, as upstream's serviceaccount controller does. */
import type {StoreEvent} from '../store.js'
import {Controller, type ControllerContext} from './base.js'

export class ServiceAccountController extends Controller {
  constructor(ctx: ControllerContext) {
    super(ctx, 'controller:serviceaccount')
  }

  protected interested(e: StoreEvent): boolean {
    return this.is(e, 'namespaces', 'serviceaccounts')
  }

  protected reconcile(): void {
    const saRt = this.type('serviceaccounts')
    for (const ns of this.store.listIn(this.type('namespaces'))) {
      if (ns.metadata.deletionTimestamp || this.store.getIn(saRt, ns.metadata.name, 'default')) continue
      this.store.createIn(saRt, {apiVersion: 'v1', kind: 'ServiceAccount', metadata: {name: 'default', namespace: ns.metadata.name}}, {source: this.source})
    }
  }
}
