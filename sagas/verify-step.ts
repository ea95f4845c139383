/**
 * The last step of every upgrade saga: verify the cluster from the API (src/safety/verification.ts).
 * A failed verification fails the run like any step, so compensation runs by default; what was
 * seen is kept in the journal either way, for the report.
 */
import type {KubeClients} from '../src/kube/client.js'
import {skip} from '../src/saga/engine.js'
import type {StepDefinition} from '../src/saga/types.js'
import {type Verification, VerificationError, verifyCluster} from '../src/safety/verification.js'
import type {UpgradePlan} from '../src/upgrade/types.js'
import type {HealthGateData, HealthGateInput} from './health-gate.js'

interface VerifyInput extends HealthGateInput {
  target: string
  plan: UpgradePlan
  timeouts: {nodeReadyMs: number}
}

export interface VerifyData extends HealthGateData {
  verification?: Verification
}

export function verifyStep<I extends VerifyInput, D extends VerifyData, C>(kube: KubeClients): StepDefinition<I, D, C> {
  return {
    name: 'verify',
    title: 'Verify the cluster',
    async run(ctx) {
      const {plan, target} = ctx.input
      const nodes = [...plan.servers, ...plan.agents]
      if (nodes.length === 0) return skip('no node was upgraded')
      const verification = await verifyCluster(kube, {
        target,
        nodes,
        baseline: ctx.data.healthBaseline,
        timeoutMs: ctx.input.healthGate?.timeoutMs ?? ctx.input.timeouts.nodeReadyMs,
        signal: ctx.signal,
        onProgress: (message) => ctx.log('info', message),
      })
      await ctx.updateData((data) => {
        data.verification = verification
      })
      if (!verification.passed) {
        throw new VerificationError(`verification after the upgrade to ${target} failed: ${verification.problems.join('; ')}`, {
          hint: 'the run is undone by default; look at what is listed (kubectl get nodes; kubectl get pods -A), fix it and run again',
        })
      }
      ctx.log('info', `verified: ${nodes.length} node(s) Ready at ${target}, workloads as available as before, kube-system pods Ready`)
    },
  }
}
