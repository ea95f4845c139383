import type {Distribution} from '../versions/release-version.js'
import {K3S} from './k3s.js'
import {RKE2} from './rke2.js'
import type {DistributionDescriptor} from './types.js'

export type {Arch, DistributionDescriptor, ServerKind, ServiceManager} from './types.js'

export const DISTRIBUTIONS: Readonly<Record<Distribution, DistributionDescriptor>> = {k3s: K3S, rke2: RKE2}

export function distributionOf(name: Distribution): DistributionDescriptor {
  return DISTRIBUTIONS[name]
}

/** The distribution assumed where nothing says otherwise (no config, no cluster to detect from). */
export const DEFAULT_DISTRIBUTION: Distribution = 'k3s'

/** Where each distribution's server writes its kubeconfig, for hints: `k3s: /etc/rancher/k3s/k3s.yaml, rke2: …`. */
export function kubeconfigPaths(): string {
  return Object.values(DISTRIBUTIONS).map((d) => `${d.name}: ${d.kubeconfigPath}`).join(', ')
}
