import type {DistributionDescriptor} from './distributions/index.js'
import type {Inventory, InventoryNode} from './inventory.js'
import type {NodeRole, ServerKind} from './kube/nodes.js'
import {readInstalledVersion} from './node/installed-version.js'
import {findBinDir} from './node/node-facts.js'
import {settleWithConcurrency} from './saga/concurrency.js'
import type {Transport} from './transport/types.js'
import {clusterSkew, type ClusterSkew} from './versions/skew.js'

export interface NodeStatus {
  name: string
  role: NodeRole
  /** Servers: etcd, control-plane or both. */
  serverKind?: ServerKind
  address: string
  inCluster: boolean
  inFile: boolean
  kubeletVersion?: string
  ready?: boolean
  readyReason?: string
  cordoned: boolean
  /** The run that cordoned it, when homelab did. */
  cordonedBy?: string
  ssh: {reachable: boolean; error?: string}
  /** Version of the distribution's binary on disk, when SSH answered. */
  installedVersion?: string
}

export interface ClusterStatus {
  apiServer: string
  distribution: string
  nodes: NodeStatus[]
  skew: ClusterSkew
  onlyInFile: string[]
  onlyInCluster: string[]
  warnings: string[]
}

export interface GatherStatusOptions {
  inventory: Inventory
  distribution: DistributionDescriptor
  apiServer: string
  /** Opens (or reuses) the transport of a node; may throw HostKeyError or ConnectionError. */
  connect: (node: InventoryNode) => Promise<Transport>
  /** How many nodes are asked over SSH at once. */
  concurrency?: number
  signal?: AbortSignal
}

/** Reads, never writes: what the API and each node's disk say, side by side. */
export async function gatherStatus(options: GatherStatusOptions): Promise<ClusterStatus> {
  const {inventory, connect, signal, distribution} = options
  // Every node is asked even when another fails: status reports, it does not stop at the first problem.
  const outcomes = await settleWithConcurrency(inventory.nodes, options.concurrency ?? 8, async (node) => {
    const transport = await connect(node)
    const binDir = node.binDirExplicit ? node.binDir : ((await findBinDir(transport, distribution, signal)) ?? node.binDir)
    return readInstalledVersion(transport, distribution, binDir, signal)
  })
  const nodes = inventory.nodes.map((node, index): NodeStatus => {
    const outcome = outcomes[index]
    const cluster = node.cluster
    return {
      name: node.name,
      role: node.role,
      ...(node.serverKind ? {serverKind: node.serverKind} : {}),
      address: node.host,
      inCluster: cluster !== undefined,
      inFile: node.inFile,
      kubeletVersion: cluster?.kubeletVersion,
      ready: cluster?.ready,
      readyReason: cluster?.readyReason,
      cordoned: cluster?.unschedulable ?? false,
      cordonedBy: cluster?.cordonedBy,
      ssh: outcome.status === 'fulfilled' ? {reachable: true} : {reachable: false, error: errorLine(outcome.reason)},
      installedVersion: outcome.status === 'fulfilled' ? outcome.value : undefined,
    }
  })
  const skew = clusterSkew(
    nodes
      .filter((node) => node.kubeletVersion)
      .map((node) => ({name: node.name, role: node.role, version: node.kubeletVersion as string})),
  )
  return {
    apiServer: options.apiServer,
    distribution: distribution.name,
    nodes,
    skew,
    onlyInFile: inventory.onlyInFile,
    onlyInCluster: inventory.onlyInCluster,
    warnings: inventory.warnings,
  }
}

function errorLine(error: unknown): string {
  if (error && typeof error === 'object' && 'oneLine' in error && typeof error.oneLine === 'function') {
    return String(error.oneLine())
  }
  return error instanceof Error ? error.message : String(error)
}
