import {ConfigError} from '../errors.js'
import type {Distribution} from '../versions/release-version.js'
import {K3S} from './k3s.js'
import {KUBEADM} from './kubeadm.js'
import {RKE2} from './rke2.js'
import type {AnyDistribution, DistributionDescriptor, PackageDistribution} from './types.js'

export type {AnyDistribution, Arch, DistributionDescriptor, PackageDistribution, ServerKind, ServiceManager} from './types.js'

export const DISTRIBUTIONS: Readonly<Record<Distribution, AnyDistribution>> = {k3s: K3S, rke2: RKE2, kubeadm: KUBEADM}

export function distributionOf(name: Distribution): AnyDistribution {
  return DISTRIBUTIONS[name]
}

/** The distributions whose nodes run one binary (k3s, rke2): what SUC plans and the binary saga know. */
export const BINARY_DISTRIBUTIONS = Object.values(DISTRIBUTIONS).filter((d): d is DistributionDescriptor => d.install === 'binary')

/** A binary distribution's descriptor; the others are refused with what to use instead. */
export function binaryDistributionOf(name: Distribution, forWhat = 'this'): DistributionDescriptor {
  const found = DISTRIBUTIONS[name]
  if (found.install !== 'binary') {
    throw new ConfigError(`${forWhat} works on ${BINARY_DISTRIBUTIONS.map((d) => d.name).join(' and ')} clusters, not ${name}`, {
      hint: `for a ${name} cluster use homelab k8s upgrade`,
    })
  }
  return found
}

export function packageDistributionOf(name: Distribution): PackageDistribution {
  const found = DISTRIBUTIONS[name]
  if (found.install !== 'packages') throw new ConfigError(`${name} is not upgraded through packages`, {hint: 'this is a bug in homelab; please report it'})
  return found
}

/** The distribution assumed where nothing says otherwise (no config, no cluster to detect from). */
export const DEFAULT_DISTRIBUTION: Distribution = 'k3s'

/** Where each distribution's server writes its kubeconfig, for hints: `k3s: /etc/rancher/k3s/k3s.yaml, rke2: …`. */
export function kubeconfigPaths(): string {
  return Object.values(DISTRIBUTIONS).map((d) => `${d.name}: ${d.kubeconfigPath}`).join(', ')
}
