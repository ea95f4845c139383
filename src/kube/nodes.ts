import type {V1Node} from '@kubernetes/client-node'

import type {KubeClients} from './client.js'

/** Label k3s and kubeadm put on control-plane nodes; the only role signal we trust. */
export const CONTROL_PLANE_LABEL = 'node-role.kubernetes.io/control-plane'
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
}

export function roleOf(node: V1Node): NodeRole {
  const value = node.metadata?.labels?.[CONTROL_PLANE_LABEL]
  return value === undefined ? 'agent' : 'server'
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
  }
}

export async function listClusterNodes(kube: KubeClients, signal?: AbortSignal): Promise<ClusterNode[]> {
  void signal
  const list = await kube.core.listNode()
  return list.items.map((node) => toClusterNode(node)).sort((a, b) => a.name.localeCompare(b.name))
}
