/**
 * The vocabulary of the saga engine: what a saga definition looks like, what the journal holds,
 * and the events a run emits. Nothing here knows about k3s.
 */

/** State of a step or of a node action inside a step. */
export type StepState =
  | 'pending'
  | 'running'
  | 'done'
  | 'failed'
  | 'skipped'
  // Ctrl-C arrived while this was running; resume runs it again.
  | 'interrupted'
  | 'compensating'
  | 'compensated'
  | 'compensation-failed'
export type ActionState = StepState

export type CompensationState = 'pending' | 'compensating' | 'compensated' | 'compensation-failed'

export type RunStatus =
  | 'running'
  | 'succeeded'
  | 'failed'
  | 'compensated'
  | 'compensation-incomplete'
  | 'interrupted'

/**
 * What to do when a step fails. 'compensate' undoes everything registered; 'stop' runs only the
 * compensations registered with `always: true` (e.g. uncordon) and leaves the rest in the journal
 * for `--resume` or `rollback`.
 */
export type OnFailure = 'compensate' | 'stop'

/** An error as the journal keeps it: enough for a person to act on, nothing more. */
export interface ErrorRecord {
  name: string
  message: string
  hint?: string
  exitCode?: number
  /** Messages of the `cause` chain, outermost first, joined with ': '. */
  cause?: string
}

export interface ActionRecord {
  node: string
  state: ActionState
  startedAt?: string
  finishedAt?: string
  /** Why it was skipped. */
  reason?: string
  error?: ErrorRecord
}

export interface StepRecord {
  name: string
  title: string
  state: StepState
  /** How many times this step has been started, across resumes. */
  attempts: number
  startedAt?: string
  finishedAt?: string
  reason?: string
  error?: ErrorRecord
  /** Node actions by node name. */
  actions: Record<string, ActionRecord>
}

/** A compensation, described by data so that another process can run it from the journal. */
export interface CompensationRecord {
  /** Unique within the run, chosen by the saga (e.g. `uncordon:agent-1`). */
  id: string
  /** Name of the handler in the saga's `compensations` registry. */
  handler: string
  params: unknown
  description: string
  /** The step that registered it. */
  step: string
  node?: string
  /** Runs under `onFailure: 'stop'` too. */
  always: boolean
  /** What a person can run by hand if this compensation fails. */
  manual?: string[]
  state: CompensationState
  registeredAt: string
  startedAt?: string
  finishedAt?: string
  attempts: number
  error?: ErrorRecord
}

/**
 * One run, as stored in `<runs dir>/<id>.json`.
 *
 * Contract: the journal is a plain file in the user's state directory and is shown in reports.
 * Never put secrets in it (tokens, passphrases, private keys, kubeconfig contents); `input`,
 * `data` and compensation `params` are chosen by the saga, which must keep them secret-free.
 */
export interface RunJournal {
  schemaVersion: 1
  id: string
  saga: string
  status: RunStatus
  createdAt: string
  updatedAt: string
  /** The process that wrote this version of the file. */
  writer: {pid: number; hostname: string}
  /** What the run was asked to do (target, options); read-only for steps. */
  input: unknown
  /** What the saga learned while running: backup names, previous versions, cordoned nodes. */
  data: Record<string, unknown>
  onFailure?: OnFailure
  steps: StepRecord[]
  /** In registration order; compensation runs them in reverse. */
  compensations: CompensationRecord[]
  /** Set once compensation began: from then on the run can only be rolled back, not resumed. */
  rollbackStartedAt?: string
  /** The error that stopped the run. */
  error?: ErrorRecord
}

// ---------------------------------------------------------------------------------------------
// Saga definitions

/** Returned by a step or action that had nothing to do. */
export interface Skip {
  readonly skipped: string
}
/** Returned by a step when the whole run has nothing to do: the remaining steps are skipped. */
export interface NothingToDo {
  readonly nothingToDo: string
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'

/**
 * Describes one compensation to register. `C` maps handler names to their params, so the handler
 * name and its params are checked together.
 */
export type CompensationSpec<C> = {
  [K in keyof C & string]: {
    id: string
    handler: K
    params: C[K]
    description: string
    /** Defaults to the action's node inside `ctx.action`. */
    node?: string
    always?: boolean
    manual?: string[]
  }
}[keyof C & string]

interface BaseContext<I, D> {
  readonly runId: string
  readonly input: Readonly<I>
  /** The journal's data bag as it is now. Change it only through `updateData`. */
  readonly data: Readonly<D>
  readonly signal: AbortSignal
}

export interface StepContext<I, D, C> extends BaseContext<I, D> {
  readonly step: string
  /** This step's record from an earlier attempt (resume), with its node actions; else undefined. */
  readonly previous?: Readonly<StepRecord>
  log(level: LogLevel, message: string, node?: string): void
  /** Mutates the data bag and writes the journal. Mutate synchronously inside the callback. */
  updateData(mutate: (data: D) => void): Promise<void>
  /**
   * Records an undo, durably, before returning. Registering an id that is still pending does
   * nothing (first registration wins, so a resumed step keeps the original params); registering
   * an id that was already compensated arms it again.
   */
  registerCompensation(spec: CompensationSpec<C>): Promise<void>
  /** Forgets a compensation whose effect the step has undone itself (e.g. it uncordoned). */
  dropCompensation(id: string): Promise<void>
  /**
   * Runs one node's part of this step with its own journaled state. A node already `done` in an
   * earlier attempt is not run again ('skipped').
   */
  action(node: string, fn: (ctx: ActionContext<I, D, C>) => Promise<void | Skip>): Promise<'done' | 'skipped'>
  /**
   * `action` for many nodes, at most `concurrency` at once. After the first failure or abort no
   * new node starts; the ones in flight finish. Throws the failure (or `NodeActionsFailedError`
   * for several, `AbortedError` if nodes were left unstarted by an abort).
   */
  actions(
    nodes: readonly string[],
    options: {concurrency: number},
    fn: (ctx: ActionContext<I, D, C>) => Promise<void | Skip>,
  ): Promise<void>
}

export interface ActionContext<I, D, C> extends BaseContext<I, D> {
  readonly step: string
  readonly node: string
  /** This node's record from an earlier attempt of the step, if any. */
  readonly previousAction?: Readonly<ActionRecord>
  log(level: LogLevel, message: string): void
  updateData(mutate: (data: D) => void): Promise<void>
  registerCompensation(spec: CompensationSpec<C>): Promise<void>
  dropCompensation(id: string): Promise<void>
}

export interface CompensationContext<I, D> extends BaseContext<I, D> {
  readonly compensation: Readonly<CompensationRecord>
  log(level: LogLevel, message: string): void
}

export interface StepDefinition<I, D, C> {
  /** Stable key in the journal; do not rename between releases. */
  name: string
  title: string
  run(ctx: StepContext<I, D, C>): Promise<void | Skip | NothingToDo>
}

/** Must be idempotent: rollback may run it again after a crash or a partial failure. */
export type CompensationHandler<P, I, D> = (params: P, ctx: CompensationContext<I, D>) => Promise<void>

export interface SagaDefinition<I, D, C extends object> {
  /** Stored in the journal; a journal is only resumed by the saga of the same name. */
  name: string
  steps: ReadonlyArray<StepDefinition<I, D, C>>
  compensations: {[K in keyof C]: CompensationHandler<C[K], I, D>}
}

// ---------------------------------------------------------------------------------------------
// Events

interface EventBase {
  runId: string
  /** ISO time from the injected clock. */
  time: string
}

export type SagaEvent = EventBase &
  (
    | {type: 'run-started'; saga: string; mode: 'forward' | 'rollback'; resumed: boolean}
    | {type: 'step-started'; step: string; title: string}
    | {type: 'step-finished'; step: string}
    | {type: 'step-skipped'; step: string; reason: string}
    | {type: 'step-failed'; step: string; error: ErrorRecord}
    | {type: 'step-interrupted'; step: string}
    | {type: 'action-started'; step: string; node: string}
    | {type: 'action-finished'; step: string; node: string}
    | {type: 'action-skipped'; step: string; node: string; reason: string}
    | {type: 'action-failed'; step: string; node: string; error: ErrorRecord}
    | {type: 'action-interrupted'; step: string; node: string}
    | {type: 'compensation-registered'; id: string; step: string; node?: string; description: string}
    | {type: 'compensation-started'; id: string; step: string; node?: string; description: string}
    | {type: 'compensation-finished'; id: string; step: string; node?: string}
    | {type: 'compensation-failed'; id: string; step: string; node?: string; error: ErrorRecord}
    | {type: 'log'; level: LogLevel; message: string; step?: string; node?: string}
    | {type: 'run-finished'; outcome: SagaOutcome; status: RunStatus}
  )

export type SagaEventType = SagaEvent['type']

// ---------------------------------------------------------------------------------------------
// Results

/**
 * - succeeded / nothing-to-do: all done (or nothing needed doing)
 * - refused: a step threw an error with the preflight-refused exit code before anything was
 *   registered for undo (nothing changed)
 * - failed: a step failed before anything was registered for undo (nothing changed)
 * - compensated: failed, and every registered compensation succeeded
 * - compensation-incomplete: failed, and at least one compensation failed
 * - stopped: failed under `onFailure: 'stop'`; compensations are left for resume or rollback
 * - interrupted: aborted through the signal; resumable (or, if it was compensating, rollback-able)
 */
export type SagaOutcome =
  | 'succeeded'
  | 'nothing-to-do'
  | 'refused'
  | 'failed'
  | 'compensated'
  | 'compensation-incomplete'
  | 'stopped'
  | 'interrupted'

export interface SagaResult {
  runId: string
  outcome: SagaOutcome
  status: RunStatus
  /** The error that stopped forward progress (not set for success or a plain rollback). */
  error?: unknown
  /** Compensations that failed, each with its error and manual steps. */
  compensationFailures: CompensationRecord[]
  /** Compensations still to run (stop mode, interrupt). */
  pendingCompensations: CompensationRecord[]
  /** False if the final journal write failed (the result is still accurate). */
  journalSaved: boolean
  /** The journal as it was at the end. */
  journal: RunJournal
}
