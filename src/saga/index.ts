/**
 * Generic saga engine and run journal. A saga definition, in short:
 *
 * ```ts
 * interface Input {target: string; agents: string[]; concurrency: number}
 * interface Data {backup?: string; previous?: Record<string, string>}
 * interface Comps {restoreBinary: {node: string; version: string}; uncordon: {node: string}}
 *
 * export const upgrade: SagaDefinition<Input, Data, Comps> = {
 *   name: 'k3s-upgrade',
 *   steps: [
 *     {name: 'preflight', title: 'Preflight', async run(ctx) {
 *       // throw new PreflightError(...) here = exit 3, nothing changed
 *       if (allAtTarget) return nothingToDo(`all nodes are at ${ctx.input.target}`)
 *     }},
 *     {name: 'agents', title: 'Upgrade agents', async run(ctx) {
 *       await ctx.actions(ctx.input.agents, {concurrency: ctx.input.concurrency}, async (a) => {
 *         if (atTarget) return skip('already at target')
 *         await a.registerCompensation({id: `uncordon:${a.node}`, handler: 'uncordon',
 *           params: {node: a.node}, description: `uncordon ${a.node}`, always: true})
 *         await cordon(a.node, a.signal)
 *         ...
 *       })
 *     }},
 *   ],
 *   compensations: {
 *     restoreBinary: async ({node, version}, ctx) => { ... },
 *     uncordon: async ({node}, ctx) => { ... },
 *   },
 * }
 *
 * const journal = await new JournalStore().create({saga: upgrade.name, input})
 * const result = await runSaga(upgrade, journal, {signal, onEvent, onFailure: 'compensate'})
 * process.exitCode = exitCodeFor(result)
 * ```
 */
export {mapWithConcurrency, type ItemOutcome} from './concurrency.js'
export {exitCodeFor, nothingToDo, rollbackRun, runSaga, skip, type RollbackOptions, type RunOptions} from './engine.js'
export {JournalError, NodeActionsFailedError, RunStateError, SagaDefinitionError, toErrorRecord} from './errors.js'
export {
  defaultRunsDir,
  Journal,
  JOURNAL_SCHEMA_VERSION,
  JournalStore,
  newRunId,
  writeFileAtomic,
  writerIsAlive,
  type JournalStoreOptions,
  type NewRun,
  type RunFilter,
} from './journal.js'
export type * from './types.js'
