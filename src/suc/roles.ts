/**
 * Server roles as k3s and rke2 label them, for choosing the plans. A server is any node with a
 * control-plane, master or etcd label; it may run etcd only (etcd label, no control-plane label)
 * or the control plane only. Label selectors cannot say "or", so each kind gets its own plan.
 */
import {CONTROL_PLANE_LABEL, ETCD_LABEL, MASTER_LABEL} from '../kube/nodes.js'

export {CONTROL_PLANE_LABEL, ETCD_LABEL, MASTER_LABEL}

type Labels = Readonly<Record<string, string>>
const has = (labels: Labels, key: string) => Object.hasOwn(labels, key)

export function isServerNode(labels: Labels): boolean {
  return has(labels, CONTROL_PLANE_LABEL) || has(labels, MASTER_LABEL) || has(labels, ETCD_LABEL)
}

/** Runs etcd and no control plane: upgraded first, by the etcd plan. */
export function isEtcdOnly(labels: Labels): boolean {
  return has(labels, ETCD_LABEL) && !has(labels, CONTROL_PLANE_LABEL)
}

/** Labelled the old way only (master, neither control-plane nor etcd): no selector of ours picks it as a server. */
export function isMasterOnly(labels: Labels): boolean {
  return has(labels, MASTER_LABEL) && !has(labels, CONTROL_PLANE_LABEL) && !has(labels, ETCD_LABEL)
}
