import type {AnyDistribution, PackageDistribution} from './distributions/index.js'
import type {KubeClients} from './kube/client.js'
import {controlPlaneVersions} from './kube/control-plane.js'
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
  /** Version of the distribution's binary on disk (kubeadm: the kubeadm package's), when SSH answered. */
  installedVersion?: string
  /** kubeadm control planes: the version in the tags of the node's control-plane static pods. */
  controlPlaneVersion?: string
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
  distribution: AnyDistribution
  apiServer: string
  /** Read for the control-plane static pods (kubeadm); omitted, none are read. */
  kube?: KubeClients
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
    if (distribution.install === 'packages') return readUpgraderVersion(transport, distribution, signal)
    const binDir = node.binDirExplicit ? node.binDir : ((await findBinDir(transport, distribution, signal)) ?? node.binDir)
    return readInstalledVersion(transport, distribution, binDir, signal)
  })
  const controlPlane = distribution.install === 'packages' && options.kube ? await controlPlaneVersions(options.kube, distribution) : new Map<string, string>()
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
      ...(controlPlane.has(node.name) ? {controlPlaneVersion: controlPlane.get(node.name)} : {}),
    }
  })
  const skew = clusterSkew(
    nodes
      .filter((node) => node.kubeletVersion)
      .map((node) => ({name: node.name, role: node.role, version: node.kubeletVersion as string})),
    distribution.name,
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

/** `kubeadm version -o short` on the node: the version of the installed kubeadm package. */
async function readUpgraderVersion(transport: Transport, distribution: PackageDistribution, signal?: AbortSignal): Promise<string> {
  const out = (await transport.run([distribution.upgrader, 'version', '-o', 'short'], {signal, timeoutMs: 30_000})).trim()
  if (!/^v\d+\.\d+\.\d+/.test(out)) throw new Error(`${distribution.upgrader} version printed ${JSON.stringify(out.slice(0, 80))}`)
  return out
}
