import {BINARY_UPGRADE_SAGA, binaryUpgradeSaga, type SagaTimings} from '../../sagas/binary-upgrade.js'
import {KUBEADM_UPGRADE_SAGA, kubeadmUpgradeSaga} from '../../sagas/kubeadm-upgrade.js'
import type {AnyDistribution} from '../distributions/index.js'
import {HomelabError} from '../errors.js'
import type {RunJournal, SagaDefinition} from '../saga/types.js'
import {kubeadmPreflight} from './kubeadm-preflight.js'
import {preflight, type PreflightRequest} from './preflight.js'
import {kubeadmManualRecoverySteps, manualRecoverySteps} from './recovery.js'
import type {BinaryUpgradeDeps, UpgradeDeps, UpgradePlan} from './types.js'

/** The saga that carries out a plan, with its manual recovery. */
export interface UpgradeSaga {
  name: string
  // The saga's own types stay inside it; the runner only passes its input through the journal.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  definition(deps: UpgradeDeps, timings?: SagaTimings): SagaDefinition<any, any, any>
  manualRecoverySteps(journal: RunJournal): string[]
}

/**
 * How one way of installing Kubernetes is upgraded: its pre-flight and the saga that carries out
 * the plan. The runner picks one by the descriptor's `install` and never asks which it has.
 */
export interface Upgrader {
  preflight(deps: UpgradeDeps, request: PreflightRequest): Promise<UpgradePlan>
  saga: UpgradeSaga
}

function asBinary(deps: UpgradeDeps): BinaryUpgradeDeps {
  if (deps.distribution.install !== 'binary' || !deps.release) {
    throw new HomelabError(`the binary upgrade was given ${deps.distribution.name}`, {hint: 'this is a bug in homelab; please report it'})
  }
  return deps as BinaryUpgradeDeps
}

export const UPGRADERS: Readonly<Record<AnyDistribution['install'], Upgrader>> = {
  binary: {
    preflight: (deps, request) => preflight(asBinary(deps), request),
    saga: {name: BINARY_UPGRADE_SAGA, definition: (deps, timings) => binaryUpgradeSaga(asBinary(deps), timings), manualRecoverySteps},
  },
  packages: {
    preflight: (deps, request) => kubeadmPreflight(deps, request),
    saga: {name: KUBEADM_UPGRADE_SAGA, definition: (deps, timings) => kubeadmUpgradeSaga(deps, timings), manualRecoverySteps: kubeadmManualRecoverySteps},
  },
}

export const UPGRADE_SAGAS: readonly string[] = Object.values(UPGRADERS).map((u) => u.saga.name)

export function upgraderFor(distribution: AnyDistribution): Upgrader {
  return UPGRADERS[distribution.install]
}

/** The saga that wrote a journal (resume and rollback follow the journal, not the config). */
export function sagaOfJournal(saga: string): UpgradeSaga | undefined {
  return Object.values(UPGRADERS).find((u) => u.saga.name === saga)?.saga
}
