import type {V1Node} from '@kubernetes/client-node'

import type {KubeClients} from './client.js'

/** Label k3s, rke2 and kubeadm put on control-plane nodes. */
export const CONTROL_PLANE_LABEL = 'node-role.kubernetes.io/control-plane'
export const MASTER_LABEL = 'node-role.kubernetes.io/master'
export const ETCD_LABEL = 'node-role.kubernetes.io/etcd'

/** Which labels make a node a server, and of what kind. Descriptors name theirs; these are the ones k3s and rke2 set. */
export interface RoleLabels {
  server: readonly string[]
  etcd: string
  controlPlane: readonly string[]
}

export const ROLE_LABELS: RoleLabels = {
  server: [CONTROL_PLANE_LABEL, MASTER_LABEL, ETCD_LABEL],
  etcd: ETCD_LABEL,
  controlPlane: [CONTROL_PLANE_LABEL, MASTER_LABEL],
}

/** What a server runs: etcd only, the control plane only, or both (the default install). */
export type ServerKind = 'etcd' | 'control-plane' | 'etcd+control-plane'
/** Annotation we put on a node we cordon, naming the run, so only we ever uncordon it. */
export const CORDONED_BY_ANNOTATION = 'homelab.dev/cordoned-by'

export type NodeRole = 'server' | 'agent'

/** What the product needs to know about a Node object, read once from the API. */
export interface ClusterNode {
  name: string
  role: NodeRole
  internalIP?: string
  kubeletVersion: string
  architecture?: string
  ready: boolean
  /** Why it is not Ready, from the Ready condition. */
  readyReason?: string
  unschedulable: boolean
  /** The run id that cordoned the node, when it was us. */
  cordonedBy?: string
  labels: Record<string, string>
  /** For servers. */
  serverKind?: ServerKind
}

/**
 * A server is any node with a control-plane, master or etcd label: reading the control-plane
 * label alone would take an etcd-only server for an agent.
 */
export function roleOf(node: V1Node, labels: RoleLabels = ROLE_LABELS): NodeRole {
  const own = node.metadata?.labels ?? {}
  return labels.server.some((label) => own[label] !== undefined) ? 'server' : 'agent'
}

export function serverKindOf(node: V1Node, labels: RoleLabels = ROLE_LABELS): ServerKind | undefined {
  if (roleOf(node, labels) !== 'server') return undefined
  const own = node.metadata?.labels ?? {}
  const etcd = own[labels.etcd] !== undefined
  const controlPlane = labels.controlPlane.some((label) => own[label] !== undefined)
  return etcd && !controlPlane ? 'etcd' : controlPlane && !etcd ? 'control-plane' : 'etcd+control-plane'
}

/** Upgrade order of servers: etcd-only first (etcd must never be older than the API servers using it). */
export function serverKindRank(kind: ServerKind | undefined): number {
  return kind === 'etcd' ? 0 : 1
}

export function isNodeReady(node: V1Node): boolean {
  return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false
}

export function toClusterNode(node: V1Node): ClusterNode {
  const ready = node.status?.conditions?.find((c) => c.type === 'Ready')
  return {
    name: node.metadata?.name ?? '',
    role: roleOf(node),
    internalIP: node.status?.addresses?.find((a) => a.type === 'InternalIP')?.address,
    kubeletVersion: node.status?.nodeInfo?.kubeletVersion ?? '',
    architecture: node.status?.nodeInfo?.architecture,
    ready: ready?.status === 'True',
    readyReason: ready?.status === 'True' ? undefined : (ready?.reason ?? ready?.message ?? 'no Ready condition'),
    unschedulable: node.spec?.unschedulable === true,
    cordonedBy: node.metadata?.annotations?.[CORDONED_BY_ANNOTATION],
    labels: node.metadata?.labels ?? {},
    serverKind: serverKindOf(node),
  }
}

export async function listClusterNodes(kube: KubeClients, signal?: AbortSignal): Promise<ClusterNode[]> {
  void signal
  const list = await kube.core.listNode()
  return list.items.map((node) => toClusterNode(node)).sort((a, b) => a.name.localeCompare(b.name))
}
