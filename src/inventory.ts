import {HomelabError} from './errors.js'
import {type ClusterNode, type NodeRole, type ServerKind, serverKindRank} from './kube/nodes.js'

/** The SSH settings for one node after merging the cluster file's defaults and overrides. */
export interface NodeSshSettings {
  user?: string
  port?: number
  identityFile?: string
  become: 'sudo' | 'none'
  proxyJump?: string
}

/** One machine the product may act on: where it is, how to reach it, where k3s lives there. */
export interface InventoryNode {
  name: string
  role: NodeRole
  /** Address or ~/.ssh/config alias to connect to. */
  host: string
  /** ssh, or local for the machine the CLI runs on. */
  connection: 'ssh' | 'local'
  ssh: NodeSshSettings
  binDir: string
  /** False when binDir is only the default: pre-flight then looks for the binary in the installer's dirs. */
  binDirExplicit: boolean
  dataDir: string
  /** Node-level configuration dir (kubeadm: `/etc/kubernetes`). */
  configDir: string
  /** kubeadm: the repository definition named in homelab.yaml, if any. */
  repositoryFile?: string
  /** For servers, from the node's labels (etcd-only servers are upgraded first). */
  serverKind?: ServerKind
  inFile: boolean
  /** The Node object, when the cluster has one of this name. */
  cluster?: ClusterNode
}

export interface Inventory {
  nodes: InventoryNode[]
  /** Named in homelab.yaml but absent from the cluster. */
  onlyInFile: string[]
  /** In the cluster but not in homelab.yaml (only when nodes are not discovered). */
  onlyInCluster: string[]
  /** Disagreements between the file and the cluster, one sentence each. */
  warnings: string[]
}

/** The part of the cluster file the inventory reads; kept narrow so it is easy to build in tests. */
export interface InventoryConfig {
  discover: boolean
  ssh: Omit<NodeSshSettings, 'become'> & {become: 'sudo' | 'none'}
  install: {binDir: string; dataDir: string; configDir?: string; repositoryFile?: string}
  nodes: Array<{
    name: string
    host?: string
    role?: NodeRole
    connection?: 'ssh' | 'local'
    ssh?: Partial<NodeSshSettings>
    install?: {binDir?: string; dataDir?: string; configDir?: string; repositoryFile?: string}
  }>
}

function definedOnly<T extends object>(value: T | undefined): Partial<T> {
  return Object.fromEntries(Object.entries(value ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>
}

/**
 * Merges the cluster file with the Nodes the API lists. With `discover`, the API decides which
 * nodes exist (role from the node-role labels, address from InternalIP) and the file only adds
 * SSH settings; without it, the file decides and the API only confirms. Either way every node
 * present on one side only is reported, never silently dropped or invented.
 */
export function buildInventory(config: InventoryConfig, clusterNodes: readonly ClusterNode[] | undefined, options: {binDirExplicit?: boolean} = {}): Inventory {
  const binDirExplicit = options.binDirExplicit ?? true
  const fileByName = new Map(config.nodes.map((entry) => [entry.name, entry]))
  const clusterByName = new Map((clusterNodes ?? []).map((node) => [node.name, node]))
  const warnings: string[] = []

  const make = (name: string, entry: InventoryConfig['nodes'][number] | undefined, cluster: ClusterNode | undefined): InventoryNode | undefined => {
    const role = entry?.role ?? cluster?.role
    const host = entry?.host ?? cluster?.internalIP
    if (!role || !host) {
      warnings.push(`node ${name}: no ${role ? 'address' : 'role'} known (add it to homelab.yaml under nodes)`)
      return undefined
    }
    if (entry?.role && cluster && entry.role !== cluster.role) {
      warnings.push(`node ${name}: homelab.yaml says ${entry.role}, the cluster says ${cluster.role} (from its node-role labels); using ${entry.role}`)
    }
    return {
      name,
      role,
      host,
      connection: entry?.connection ?? 'ssh',
      ssh: {...config.ssh, ...definedOnly(entry?.ssh)},
      binDir: entry?.install?.binDir ?? config.install.binDir,
      binDirExplicit: entry?.install?.binDir !== undefined || binDirExplicit,
      dataDir: entry?.install?.dataDir ?? config.install.dataDir,
      configDir: entry?.install?.configDir ?? config.install.configDir ?? '/etc/kubernetes',
      ...definedOnly({repositoryFile: entry?.install?.repositoryFile ?? config.install.repositoryFile}),
      serverKind: role === 'server' ? (cluster?.serverKind ?? 'etcd+control-plane') : undefined,
      inFile: entry !== undefined,
      cluster,
    }
  }

  const names = config.discover && clusterNodes ? [...clusterByName.keys()] : [...fileByName.keys()]
  const nodes = names
    .map((name) => make(name, fileByName.get(name), clusterByName.get(name)))
    .filter((node): node is InventoryNode => node !== undefined)
    .sort((a, b) => (a.role === b.role ? serverKindRank(a.serverKind) - serverKindRank(b.serverKind) || a.name.localeCompare(b.name) : a.role === 'server' ? -1 : 1))

  return {
    nodes,
    onlyInFile: clusterNodes ? [...fileByName.keys()].filter((name) => !clusterByName.has(name)) : [],
    onlyInCluster: clusterNodes && !config.discover ? [...clusterByName.keys()].filter((name) => !fileByName.has(name)) : [],
    warnings,
  }
}

/** The inventory's node of that name, for a saga following its journal (the file may have changed since). */
export function journalNode(inventory: Inventory, name: string): InventoryNode {
  const node = inventory.nodes.find((n) => n.name === name)
  if (!node) throw new HomelabError(`node ${name} from the journal is no longer in the inventory`, {hint: 'restore it in homelab.yaml, then run again'})
  return node
}
