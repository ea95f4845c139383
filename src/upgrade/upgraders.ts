import {BINARY_UPGRADE_SAGA, binaryUpgradeSaga, type SagaTimings} from '../../sagas/binary-upgrade.js'
import type {AnyDistribution} from '../distributions/index.js'
import {ConfigError, HomelabError} from '../errors.js'
import type {RunJournal, SagaDefinition} from '../saga/types.js'
import {preflight, type PreflightRequest} from './preflight.js'
import {manualRecoverySteps} from './recovery.js'
import type {BinaryUpgradeDeps, UpgradeDeps, UpgradePlan} from './types.js'

/**
 * How one way of installing Kubernetes is upgraded: its pre-flight, its saga and its manual
 * recovery. The runner picks one by the descriptor's `install` and never asks which it has.
 */
export interface Upgrader {
  saga: string
  preflight(deps: UpgradeDeps, request: PreflightRequest): Promise<UpgradePlan>
  // The saga's own types stay inside it; the runner only passes its input through the journal.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  definition(deps: UpgradeDeps, timings?: SagaTimings): SagaDefinition<any, any, any>
  manualRecoverySteps(journal: RunJournal): string[]
}

function asBinary(deps: UpgradeDeps): BinaryUpgradeDeps {
  if (deps.distribution.install !== 'binary' || !deps.release) {
    throw new HomelabError(`the binary upgrade was given ${deps.distribution.name}`, {hint: 'this is a bug in homelab; please report it'})
  }
  return deps as BinaryUpgradeDeps
}

// kubeadm's package saga is not built yet: its clusters are refused by name, before any change.
export const UPGRADERS: Readonly<Partial<Record<AnyDistribution['install'], Upgrader>>> = {
  binary: {
    saga: BINARY_UPGRADE_SAGA,
    preflight: (deps, request) => preflight(asBinary(deps), request),
    definition: (deps, timings) => binaryUpgradeSaga(asBinary(deps), timings),
    manualRecoverySteps,
  },
}

export const UPGRADE_SAGAS: readonly string[] = Object.values(UPGRADERS).map((u) => u.saga)

export function upgraderFor(distribution: AnyDistribution): Upgrader {
  const found = UPGRADERS[distribution.install]
  if (!found) {
    throw new ConfigError(`homelab k8s upgrade cannot upgrade ${distribution.name} clusters yet; nothing was changed`, {
      hint: `upgrade ${distribution.name} by hand for now (kubernetes.io/docs/tasks/administer-cluster/kubeadm/kubeadm-upgrade/); homelab k8s status works on it`,
    })
  }
  return found
}

/** The upgrader whose saga wrote a journal (resume and rollback follow the journal, not the config). */
export function upgraderOfSaga(saga: string): Upgrader | undefined {
  return Object.values(UPGRADERS).find((u) => u.saga === saga)
}
