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
