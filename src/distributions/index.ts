import type {Distribution} from '../versions/release-version.js'
import {K3S} from './k3s.js'
import {RKE2} from './rke2.js'
import type {DistributionDescriptor} from './types.js'

export type {Arch, DistributionDescriptor, ServerKind, ServiceManager} from './types.js'

export const DISTRIBUTIONS: Readonly<Record<Distribution, DistributionDescriptor>> = {k3s: K3S, rke2: RKE2}

export function distributionOf(name: Distribution): DistributionDescriptor {
  return DISTRIBUTIONS[name]
}
