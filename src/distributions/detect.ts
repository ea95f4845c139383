import {ConfigError} from '../errors.js'
import type {ClusterNode} from '../kube/nodes.js'
import type {Distribution} from '../versions/release-version.js'
import type {KubeClients} from '../kube/client.js'
import {apiFailure, isNotFound} from '../kube/api-errors.js'
import {DISTRIBUTIONS} from './index.js'
import type {PackageDistribution} from './types.js'

export interface DetectedDistribution {
  name: Distribution
  /** The nodes whose kubelet version said so, for the message. */
  evidence: string
}

/**
 * The distribution the nodes' kubelet versions name (`+k3sN`, `+rke2rN`). A cluster whose nodes
 * disagree is refused: no single set of names, paths and binaries fits it.
 */
export function detectDistribution(nodes: readonly ClusterNode[]): DetectedDistribution | undefined {
  const byName = new Map<Distribution, string[]>()
  for (const node of nodes) {
    const found = Object.values(DISTRIBUTIONS).find((d) => d.versionSuffix !== '' && new RegExp(`[+-]${d.versionSuffix}\\d+$`).test(node.kubeletVersion))
    if (found) byName.set(found.name, [...(byName.get(found.name) ?? []), node.name])
  }
  if (byName.size > 1) {
    const parts = [...byName].map(([name, list]) => `${name} on ${list.join(', ')}`)
    throw new ConfigError(`the cluster mixes distributions (${parts.join('; ')}); homelab upgrades one distribution at a time`, {
      hint: 'move every node to one distribution first, or limit homelab.yaml to the nodes of one',
    })
  }
  const [entry] = byName
  if (!entry) return undefined
  const [name, list] = entry
  return {name, evidence: `kubelet ${nodes.find((n) => n.name === list[0])?.kubeletVersion} on ${list.length === nodes.length ? 'every node' : list.join(', ')}`}
}

/**
 * A cluster whose kubelets all print plain `vX.Y.Z` and that holds the ConfigMap only its
 * installer writes (`kube-system/kubeadm-config`) is that installer's. Undefined when either is missing.
 */
export async function detectPackageDistribution(kube: KubeClients, nodes: readonly ClusterNode[]): Promise<DetectedDistribution | undefined> {
  if (nodes.length === 0 || !nodes.every((n) => /^v\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?$/.test(n.kubeletVersion))) return undefined
  for (const d of Object.values(DISTRIBUTIONS).filter((x): x is PackageDistribution => x.install === 'packages')) {
    const {namespace, name} = d.clusterConfigMap
    try {
      await kube.core.readNamespacedConfigMap({namespace, name})
    } catch (error) {
      // Without the right to read kube-system ConfigMaps, nothing is detected: the file must say it.
      if (isNotFound(error) || apiFailure(error).code === 403) continue
      throw error
    }
    return {name: d.name, evidence: `ConfigMap ${namespace}/${name} and plain kubelet ${nodes[0].kubeletVersion} on every node`}
  }
  return undefined
}
