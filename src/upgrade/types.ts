import type {HomelabConfig} from '../config/schema.js'
import type {Inventory, InventoryNode} from '../inventory.js'
import type {AnyDistribution, Arch, DistributionDescriptor, ServerKind, ServiceManager} from '../distributions/index.js'
import type {KubeClients} from '../kube/client.js'
import type {ReleaseSource} from '../release/release-source.js'
import type {Transport} from '../transport/types.js'

/** Everything the upgrade touches, passed in so tests can use the real transports or the simulation. */
export interface UpgradeDeps {
  kube: KubeClients
  config: HomelabConfig
  /** The cluster's distribution (configured or detected): every name, path and command comes from it. */
  distribution: AnyDistribution
  inventory: Inventory
  /** Opens (or reuses) the node's transport. */
  connect: (node: InventoryNode) => Promise<Transport>
  /** Release binaries, for the distributions that ship one (k3s, rke2). */
  release?: ReleaseSource
  now?: () => Date
}

/** UpgradeDeps of a single-binary distribution. */
export interface BinaryUpgradeDeps extends UpgradeDeps {
  distribution: DistributionDescriptor
  release: ReleaseSource
}

/** What every planned node has, whatever the distribution. */
export interface PlannedNodeBase {
  name: string
  role: 'server' | 'agent'
  /** Servers: etcd-only ones go first. */
  serverKind?: ServerKind
  host: string
  /** The SSH user homelab.yaml names for the node, for the commands a person is told to run. */
  sshUser?: string
  arch: Arch
  /** Kubelet version before the run. */
  fromVersion: string
  /** Was cordoned before we came: stays cordoned, we never uncordon it. */
  preCordoned: boolean
  /** What the plan shows beside the node's name (service manager, package manager). */
  traits?: string[]
}

/** One node in the plan, with everything a later process needs to finish or undo its upgrade. */
export interface PlannedNode extends PlannedNodeBase {
  binDir: string
  dataDir: string
  serviceManager: ServiceManager
  /** Version of the binary on disk before the run. */
  installedVersion: string
  previousSha256: string
  newSha256: string
  /** How the node gets the new system images; absent in journals written before images were planned. */
  images?: PlannedImages
}

/** A node's images plan: the mode, why, and in archive mode what it receives. */
export interface PlannedImages {
  mode: 'archive' | 'registry' | 'pull'
  reason: string
  /** Archive mode: the agent's image dir on the node. */
  dir?: string
  /** Archive mode: the target's archives, verified in the CLI's cache, as they will be named on the node. */
  archives?: Array<{file: string; sha256: string; size: number; hadPrevious: boolean}>
}

export interface DrainReport {
  node: string
  evict: string[]
  ignored: number
  pdbBlocked: Array<{pod: string; pdb: string}>
}

export interface UpgradePlan<N extends PlannedNodeBase = PlannedNodeBase> {
  target: string
  /** In the order they will be upgraded. */
  servers: N[]
  agents: N[]
  /** Nodes left alone, with why (already at the target, not selected by --nodes). */
  skipped: Array<{node: string; reason: string}>
  backup: {velero: boolean; etcdSnapshotNode?: string}
  /** Packaged components every server leaves alone (`<manifest>.skip`), which this upgrade does not touch. */
  skippedComponents: string[]
  drain: DrainReport[]
  warnings: string[]
  /** --canary: these agents go first, then the cluster soaks (ms) before the rest. */
  canary?: {nodes: string[]; soakMs: number}
  /** hooks: in homelab.yaml, per phase, as the commands will run. */
  hooks?: Partial<Record<'preRun' | 'postRun' | 'preNode' | 'postNode', string[]>>
}
