/**
 * The hooks inside both upgrade sagas: preRun as the first step (a failure refuses the run with
 * exit 3, nothing changed), preNode before a node is touched and postNode once it is back (a
 * failure fails that node's action, so compensation runs). Each hook phase that finished is
 * kept in the journal, so --resume does not run it again. postRun runs after the saga
 * (src/upgrade/run-upgrade.ts), with the outcome.
 */
import {skip} from '../src/saga/engine.js'
import type {ActionContext, StepDefinition} from '../src/saga/types.js'
import {type Hooks, runHooks} from '../src/hooks/hooks.js'
import type {UpgradePlan} from '../src/upgrade/types.js'

export interface HooksInput {
  /** Absent in journals written before hooks existed. */
  hooks?: Hooks
  target: string
  plan: UpgradePlan
}

export interface HooksData {
  /** `preRun`, `preNode:agent-1`, …: finished, not run again on --resume. */
  hooksDone?: string[]
}

function oldest(plan: UpgradePlan): string | undefined {
  return [...plan.servers, ...plan.agents].map((n) => n.fromVersion).sort()[0]
}

export function preRunHooksStep<I extends HooksInput, D extends HooksData, C>(): StepDefinition<I, D, C> {
  return {
    name: 'pre-run-hooks',
    title: 'Run the preRun hooks',
    async run(ctx) {
      const commands = ctx.input.hooks?.preRun ?? []
      if (commands.length === 0) return skip('no preRun hooks')
      await runHooks(commands, {runId: ctx.runId, phase: 'preRun', from: oldest(ctx.input.plan), to: ctx.input.target}, {signal: ctx.signal, log: (m) => ctx.log('info', m)})
      await ctx.updateData((data) => {
        data.hooksDone = [...(data.hooksDone ?? []), 'preRun']
      })
    },
  }
}

export async function nodeHooks<I extends HooksInput, D extends HooksData, C>(ctx: ActionContext<I, D, C>, phase: 'preNode' | 'postNode', node: {name: string; role: string; fromVersion: string}): Promise<void> {
  const commands = ctx.input.hooks?.[phase] ?? []
  const key = `${phase}:${node.name}`
  if (commands.length === 0 || ctx.data.hooksDone?.includes(key)) return
  await runHooks(commands, {runId: ctx.runId, phase, node: node.name, role: node.role, from: node.fromVersion, to: ctx.input.target}, {signal: ctx.signal, log: (m) => ctx.log('info', m)})
  await ctx.updateData((data) => {
    data.hooksDone = [...(data.hooksDone ?? []), key]
  })
}
