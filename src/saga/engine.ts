/**
 * The saga engine: runs a saga's steps in order against a journal, registers compensations as
 * steps report their changes, and undoes them in reverse when a step fails.
 *
 * The journal is written before and after every step, node action and compensation, and it holds
 * compensations as data (handler name + params), so a new process can resume or roll back a run
 * from the file alone. The engine never prints; it emits events.
 */
import {AbortedError, ExitCode, HomelabError} from '../errors.js'
import {mapWithConcurrency} from './concurrency.js'
import {NodeActionsFailedError, RunStateError, SagaDefinitionError, toErrorRecord} from './errors.js'
import type {Journal} from './journal.js'
import type {
  ActionContext,
  ActionRecord,
  CompensationContext,
  CompensationHandler,
  CompensationRecord,
  CompensationSpec,
  NothingToDo,
  OnFailure,
  RunJournal,
  RunStatus,
  SagaDefinition,
  SagaEvent,
  SagaOutcome,
  SagaResult,
  Skip,
  StepContext,
  StepDefinition,
  StepRecord,
  StepState,
} from './types.js'

export interface RunOptions {
  /** Abort = Ctrl-C: steps finish or undo the node action in flight; the run ends 'interrupted'. */
  signal?: AbortSignal
  /** Receives every event, in order. Must not throw (errors from it are ignored). */
  onEvent?: (event: SagaEvent) => void
  /** Default 'compensate'. */
  onFailure?: OnFailure
}

export type RollbackOptions = Omit<RunOptions, 'onFailure'>

/** A step or action result: nothing to do here, for this reason. */
export function skip(reason: string): Skip {
  return {skipped: reason}
}

/** A step result: the whole run has nothing to do; later steps are skipped. */
export function nothingToDo(reason: string): NothingToDo {
  return {nothingToDo: reason}
}

/**
 * Runs (or resumes) a saga. A fresh journal comes from `JournalStore.create`; a journal loaded
 * from disk resumes: steps already done or skipped are not run again, and node actions already
 * done are skipped. Rejects only for a journal it cannot use (`RunStateError`) or cannot write
 * at the start; everything else is an outcome in the result.
 */
export function runSaga<I, D, C extends object>(
  saga: SagaDefinition<I, D, C>,
  journal: Journal,
  options: RunOptions = {},
): Promise<SagaResult> {
  return new SagaRun(saga, journal, options).forward(options.onFailure ?? 'compensate')
}

/**
 * Runs every compensation of a run that is not yet compensated, newest first, from the journal
 * alone: what `homelab k8s rollback` does after a failure, a `stop`, an interrupt or a crash.
 * Failed compensations are tried again.
 */
export function rollbackRun<I, D, C extends object>(
  saga: SagaDefinition<I, D, C>,
  journal: Journal,
  options: RollbackOptions = {},
): Promise<SagaResult> {
  return new SagaRun(saga, journal, options).rollback()
}

/** The CLI's exit code for a result (see ExitCode in src/errors.ts). */
export function exitCodeFor(result: Pick<SagaResult, 'outcome' | 'error'>): ExitCode {
  switch (result.outcome) {
    case 'succeeded':
    case 'nothing-to-do':
      return ExitCode.ok
    case 'refused':
      return ExitCode.preflightRefused
    case 'failed':
      // Nothing changed, so the error's own meaning (usage, connection...) is the honest code.
      return result.error instanceof HomelabError && result.error.exitCode !== ExitCode.ok
        ? result.error.exitCode
        : ExitCode.failure
    case 'compensated':
      return ExitCode.compensated
    case 'compensation-incomplete':
    case 'stopped':
      // Both leave the cluster changed and need a person: resume, rollback or manual steps.
      return ExitCode.compensationIncomplete
    case 'interrupted':
      return ExitCode.interrupted
  }
}

const STATUS: Record<SagaOutcome, RunStatus> = {
  succeeded: 'succeeded',
  'nothing-to-do': 'succeeded',
  refused: 'failed',
  failed: 'failed',
  stopped: 'failed',
  compensated: 'compensated',
  'compensation-incomplete': 'compensation-incomplete',
  interrupted: 'interrupted',
}

type EventInput = SagaEvent extends infer E ? (E extends SagaEvent ? Omit<E, 'runId' | 'time'> : never) : never

class SagaRun<I, D, C extends object> {
  private readonly saga: SagaDefinition<I, D, C>
  private readonly journal: Journal
  private readonly signal: AbortSignal
  private readonly onEvent?: (event: SagaEvent) => void

  constructor(saga: SagaDefinition<I, D, C>, journal: Journal, options: RunOptions) {
    this.saga = saga
    this.journal = journal
    this.signal = options.signal ?? new AbortController().signal
    this.onEvent = options.onEvent
  }

  // The engine is the journal's only writer during a run; every change goes through save().
  private get j(): RunJournal {
    return this.journal.state as RunJournal
  }

  async forward(mode: OnFailure): Promise<SagaResult> {
    this.checkDefinition()
    if (this.j.rollbackStartedAt !== undefined) {
      throw new RunStateError(`run ${this.j.id} was being rolled back and cannot be resumed`, {
        hint: `finish the rollback with \`homelab k8s rollback ${this.j.id}\``,
      })
    }
    const resumed = this.j.steps.some((s) => s.state !== 'pending')
    await this.save((j) => {
      j.steps = this.saga.steps.map(
        (step) => j.steps.find((r) => r.name === step.name) ?? {name: step.name, title: step.title, state: 'pending', attempts: 0, actions: {}},
      )
      j.status = 'running'
      j.onFailure = mode
      delete j.error
    })
    this.emit({type: 'run-started', saga: this.saga.name, mode: 'forward', resumed})

    for (const [index, step] of this.saga.steps.entries()) {
      const record = this.stepRecord(step.name)
      if (record.state === 'done' || record.state === 'skipped') {
        this.emit({type: 'step-skipped', step: step.name, reason: record.state === 'done' ? 'done in an earlier attempt' : (record.reason ?? 'skipped')})
        continue
      }
      if (this.signal.aborted) return this.finish('interrupted', new AbortedError())

      const previous = record.state === 'pending' ? undefined : structuredClone(record)
      let result: void | Skip | NothingToDo
      try {
        await this.save(() => {
          record.state = 'running'
          record.attempts += 1
          record.startedAt = this.time()
          delete record.finishedAt
          delete record.error
          delete record.reason
        })
        this.emit({type: 'step-started', step: step.name, title: step.title})
        result = await step.run(this.stepContext(step, record, previous))
      } catch (error) {
        return this.stepFailed(record, error, mode)
      }

      if (isNothingToDo(result)) {
        const later = this.saga.steps.slice(index + 1).map((s) => this.stepRecord(s.name))
        await this.saveOrLog(() => {
          this.endStep(record, 'done', result.nothingToDo)
          for (const r of later) this.endStep(r, 'skipped', result.nothingToDo)
        })
        this.emit({type: 'step-finished', step: step.name})
        for (const r of later) this.emit({type: 'step-skipped', step: r.name, reason: result.nothingToDo})
        return this.finish('nothing-to-do')
      }
      const reason = isSkip(result) ? result.skipped : undefined
      try {
        await this.save(() => this.endStep(record, reason === undefined ? 'done' : 'skipped', reason))
      } catch (error) {
        return this.stepFailed(record, error, mode)
      }
      this.emit(reason === undefined ? {type: 'step-finished', step: step.name} : {type: 'step-skipped', step: step.name, reason})
    }
    return this.finish('succeeded')
  }

  async rollback(): Promise<SagaResult> {
    if (this.j.saga !== this.saga.name) throw this.wrongSaga()
    if (this.j.status === 'succeeded') {
      throw new RunStateError(`run ${this.j.id} succeeded; it has nothing to roll back`, {
        hint: 'only failed, stopped or interrupted runs are rolled back',
      })
    }
    await this.save((j) => {
      j.status = 'running'
      j.rollbackStartedAt ??= this.time()
    })
    this.emit({type: 'run-started', saga: this.saga.name, mode: 'rollback', resumed: true})
    const {interrupted} = await this.compensate(() => true, true)
    return this.finish(interrupted ? 'interrupted' : this.failedCompensations().length > 0 ? 'compensation-incomplete' : 'compensated')
  }

  private async stepFailed(record: StepRecord, error: unknown, mode: OnFailure): Promise<SagaResult> {
    if (this.signal.aborted) {
      await this.saveOrLog(() => this.endStep(record, 'interrupted'))
      this.emit({type: 'step-interrupted', step: record.name})
      return this.finish('interrupted', error)
    }
    const errorRecord = toErrorRecord(error)
    await this.saveOrLog(() => {
      this.endStep(record, 'failed')
      record.error = errorRecord
    })
    this.emit({type: 'step-failed', step: record.name, error: errorRecord})

    if (this.j.compensations.every((c) => c.state === 'compensated')) {
      const refused = error instanceof HomelabError && error.exitCode === ExitCode.preflightRefused
      return this.finish(refused ? 'refused' : 'failed', error)
    }
    if (mode === 'compensate') {
      await this.saveOrLog((j) => {
        j.rollbackStartedAt = this.time()
      })
      const {interrupted} = await this.compensate(() => true, true)
      return this.finish(interrupted ? 'interrupted' : this.failedCompensations().length > 0 ? 'compensation-incomplete' : 'compensated', error)
    }
    const {interrupted} = await this.compensate((c) => c.always, false)
    if (interrupted) return this.finish('interrupted', error)
    if (this.failedCompensations().length > 0) return this.finish('compensation-incomplete', error)
    const remaining = this.j.compensations.some((c) => c.state !== 'compensated')
    return this.finish(remaining ? 'stopped' : 'compensated', error)
  }

  /**
   * Runs the selected compensations newest first. A failure is recorded and the next one still
   * runs; an abort stops before the next one (the one in flight decides for itself).
   * `markSteps`: reflect progress in step and action states (a real rollback, not a 'stop').
   */
  private async compensate(select: (c: CompensationRecord) => boolean, markSteps: boolean): Promise<{interrupted: boolean}> {
    const todo = this.j.compensations.filter((c) => c.state !== 'compensated' && select(c)).reverse()
    for (const c of todo) {
      if (this.signal.aborted) return {interrupted: true}
      const where = {id: c.id, step: c.step, ...(c.node === undefined ? {} : {node: c.node})}
      await this.saveOrLog(() => {
        c.state = 'compensating'
        c.startedAt = this.time()
        c.attempts += 1
        delete c.finishedAt
        delete c.error
        if (markSteps) this.markCompensationProgress(c)
      })
      this.emit({type: 'compensation-started', ...where, description: c.description})
      try {
        const handler = Object.hasOwn(this.saga.compensations, c.handler)
          ? (this.saga.compensations[c.handler as keyof C] as CompensationHandler<unknown, I, D>)
          : undefined
        if (!handler) {
          throw new SagaDefinitionError(`no compensation handler named "${c.handler}"`, {
            hint: `the run was started by another homelab version; undo by hand: ${c.description}`,
          })
        }
        await handler(c.params, this.compensationContext(c))
        await this.saveOrLog(() => {
          c.state = 'compensated'
          c.finishedAt = this.time()
          if (markSteps) this.markCompensationProgress(c)
        })
        this.emit({type: 'compensation-finished', ...where})
      } catch (error) {
        // Aborted mid-way is not a failure: the compensation stays pending for `rollback`.
        const interrupted = this.signal.aborted
        const errorRecord = toErrorRecord(error)
        await this.saveOrLog(() => {
          c.state = interrupted ? 'pending' : 'compensation-failed'
          c.finishedAt = this.time()
          c.error = errorRecord
          if (markSteps) this.markCompensationProgress(c)
        })
        if (interrupted) {
          this.emit({type: 'log', level: 'warn', message: `interrupted while undoing: ${c.description}`, ...where})
          return {interrupted: true}
        }
        this.emit({type: 'compensation-failed', ...where, error: errorRecord})
      }
    }
    return {interrupted: false}
  }

  private stepContext(step: StepDefinition<I, D, C>, record: StepRecord, previous: StepRecord | undefined): StepContext<I, D, C> {
    const run = this
    const started = new Set<string>()
    const action = (node: string, fn: (ctx: ActionContext<I, D, C>) => Promise<void | Skip>) =>
      run.runAction(record, started, node, fn)
    return {
      runId: run.j.id,
      step: step.name,
      previous,
      signal: run.signal,
      get input() {
        return run.j.input as I
      },
      get data() {
        return run.j.data as D
      },
      log: (level, message, node) =>
        run.emit({type: 'log', level, message, step: step.name, ...(node === undefined ? {} : {node})}),
      updateData: (mutate) => run.save((j) => mutate(j.data as D)),
      registerCompensation: (spec) => run.register(spec, step.name, undefined),
      dropCompensation: (id) => run.drop(id),
      action,
      async actions(nodes, {concurrency}, fn) {
        const outcomes = await mapWithConcurrency(nodes, concurrency, (node) => action(node, fn), run.signal)
        const failures = outcomes.flatMap((o) => (o.status === 'rejected' ? [{node: o.item, error: o.error}] : []))
        if (failures.length === 1) throw failures[0]?.error
        if (failures.length > 1) throw new NodeActionsFailedError(step.name, failures)
        const unstarted = outcomes.filter((o) => o.status === 'not-started').length
        if (unstarted > 0) throw new AbortedError(`${step.title}: cancelled before ${unstarted} node(s) started`)
      },
    }
  }

  private async runAction(
    step: StepRecord,
    started: Set<string>,
    node: string,
    fn: (ctx: ActionContext<I, D, C>) => Promise<void | Skip>,
  ): Promise<'done' | 'skipped'> {
    const prior = step.actions[node]
    if (prior?.state === 'done') {
      this.emit({type: 'action-skipped', step: step.name, node, reason: 'done in an earlier attempt'})
      return 'skipped'
    }
    if (started.has(node)) {
      throw new SagaDefinitionError(`step ${step.name} started node ${node} twice`, {hint: 'list each node once'})
    }
    started.add(node)
    const record: ActionRecord = {node, state: 'running', startedAt: this.time()}
    await this.save(() => {
      step.actions[node] = record
    })
    this.emit({type: 'action-started', step: step.name, node})

    let result: void | Skip
    try {
      result = await fn(this.actionContext(step.name, node, prior && structuredClone(prior)))
    } catch (error) {
      const interrupted = this.signal.aborted
      const errorRecord = toErrorRecord(error)
      await this.saveOrLog(() => {
        record.state = interrupted ? 'interrupted' : 'failed'
        record.finishedAt = this.time()
        if (!interrupted) record.error = errorRecord
      })
      this.emit(interrupted
        ? {type: 'action-interrupted', step: step.name, node}
        : {type: 'action-failed', step: step.name, node, error: errorRecord})
      throw error
    }
    const reason = isSkip(result) ? result.skipped : undefined
    await this.save(() => {
      record.state = reason === undefined ? 'done' : 'skipped'
      record.finishedAt = this.time()
      if (reason !== undefined) record.reason = reason
    })
    this.emit(reason === undefined
      ? {type: 'action-finished', step: step.name, node}
      : {type: 'action-skipped', step: step.name, node, reason})
    return reason === undefined ? 'done' : 'skipped'
  }

  private actionContext(step: string, node: string, previousAction: ActionRecord | undefined): ActionContext<I, D, C> {
    const run = this
    return {
      runId: run.j.id,
      step,
      node,
      previousAction,
      signal: run.signal,
      get input() {
        return run.j.input as I
      },
      get data() {
        return run.j.data as D
      },
      log: (level, message) => run.emit({type: 'log', level, message, step, node}),
      updateData: (mutate) => run.save((j) => mutate(j.data as D)),
      registerCompensation: (spec) => run.register(spec, step, node),
      dropCompensation: (id) => run.drop(id),
    }
  }

  private compensationContext(c: CompensationRecord): CompensationContext<I, D> {
    const run = this
    return {
      runId: run.j.id,
      compensation: c,
      signal: run.signal,
      get input() {
        return run.j.input as I
      },
      get data() {
        return run.j.data as D
      },
      log: (level, message) =>
        run.emit({type: 'log', level, message, step: c.step, ...(c.node === undefined ? {} : {node: c.node})}),
    }
  }

  private async register(spec: CompensationSpec<C>, step: string, node: string | undefined): Promise<void> {
    if (!Object.hasOwn(this.saga.compensations, spec.handler)) {
      throw new SagaDefinitionError(`step ${step} registered an unknown compensation handler "${spec.handler}"`, {
        hint: `add "${spec.handler}" to the compensations of saga ${this.saga.name}`,
      })
    }
    const existing = this.j.compensations.find((c) => c.id === spec.id)
    // A resumed step registers again; the first registration holds the state from before the change.
    if (existing?.state === 'pending') return
    const onNode = spec.node ?? node
    const record: CompensationRecord = {
      id: spec.id,
      handler: spec.handler,
      // Exactly what a new process will read back from the file.
      params: spec.params === undefined ? null : JSON.parse(JSON.stringify(spec.params)),
      description: spec.description,
      step,
      ...(onNode === undefined ? {} : {node: onNode}),
      always: spec.always ?? false,
      ...(spec.manual === undefined ? {} : {manual: [...spec.manual]}),
      state: 'pending',
      registeredAt: this.time(),
      attempts: 0,
    }
    await this.save((j) => {
      // Armed again after an earlier compensation: it moves to the end, where its change now is.
      j.compensations = j.compensations.filter((c) => c.id !== spec.id)
      j.compensations.push(record)
    })
    this.emit({type: 'compensation-registered', id: record.id, step, ...(onNode === undefined ? {} : {node: onNode}), description: record.description})
  }

  private drop(id: string): Promise<void> {
    return this.save((j) => {
      j.compensations = j.compensations.filter((c) => c.id !== id)
    })
  }

  private async finish(outcome: SagaOutcome, error?: unknown): Promise<SagaResult> {
    const status = STATUS[outcome]
    let journalSaved = true
    try {
      await this.journal.update((j) => {
        j.status = status
        if (error !== undefined) j.error = toErrorRecord(error)
        // Whatever was running when the run ended (a crash before a rollback) is not running now.
        for (const step of j.steps) {
          if (step.state === 'running') step.state = 'interrupted'
          for (const a of Object.values(step.actions)) if (a.state === 'running') a.state = 'interrupted'
        }
      })
    } catch (saveError) {
      journalSaved = false
      this.emit({type: 'log', level: 'error', message: toErrorRecord(saveError).message})
    }
    this.emit({type: 'run-finished', outcome, status})
    const journal = this.journal.snapshot()
    return {
      runId: journal.id,
      outcome,
      status,
      ...(error === undefined ? {} : {error}),
      compensationFailures: journal.compensations.filter((c) => c.state === 'compensation-failed'),
      pendingCompensations: journal.compensations.filter((c) => c.state === 'pending'),
      journalSaved,
      journal,
    }
  }

  private failedCompensations(): CompensationRecord[] {
    return this.j.compensations.filter((c) => c.state === 'compensation-failed')
  }

  /** A step's (and the node's) state follows the compensations it registered. */
  private markCompensationProgress(c: CompensationRecord): void {
    const step = this.j.steps.find((s) => s.name === c.step)
    if (!step) return
    const ofStep = this.j.compensations.filter((x) => x.step === c.step)
    step.state = compensationState(ofStep)
    const action = c.node === undefined ? undefined : step.actions[c.node]
    if (action) action.state = compensationState(ofStep.filter((x) => x.node === c.node))
  }

  private endStep(record: StepRecord, state: StepState, reason?: string): void {
    record.state = state
    record.finishedAt = this.time()
    if (reason !== undefined) record.reason = reason
  }

  private stepRecord(name: string): StepRecord {
    const record = this.j.steps.find((s) => s.name === name)
    if (!record) throw new SagaDefinitionError(`no journal record for step ${name}`)
    return record
  }

  private checkDefinition(): void {
    if (this.j.saga !== this.saga.name) throw this.wrongSaga()
    const names = this.saga.steps.map((s) => s.name)
    const duplicate = names.find((n, i) => names.indexOf(n) !== i)
    if (duplicate !== undefined) {
      throw new SagaDefinitionError(`saga ${this.saga.name} has two steps named ${duplicate}`)
    }
    const unknown = this.j.steps.find((r) => !names.includes(r.name))
    if (unknown) {
      throw new RunStateError(`run ${this.j.id} has a step "${unknown.name}" this version of ${this.saga.name} does not know`, {
        hint: `resume it with the homelab version that started it, or roll it back with \`homelab k8s rollback ${this.j.id}\``,
      })
    }
  }

  private wrongSaga(): RunStateError {
    return new RunStateError(`run ${this.j.id} is a ${this.j.saga} run, not ${this.saga.name}`, {
      hint: 'pick a run of the same kind',
    })
  }

  private save(mutate: (j: RunJournal) => void): Promise<void> {
    return this.journal.update(mutate)
  }

  /** For writes on the way out (failure, compensation): report, but never stop undoing. */
  private async saveOrLog(mutate: (j: RunJournal) => void): Promise<void> {
    try {
      await this.save(mutate)
    } catch (error) {
      this.emit({type: 'log', level: 'error', message: toErrorRecord(error).message})
    }
  }

  private time(): string {
    return this.journal.now().toISOString()
  }

  private emit(event: EventInput): void {
    try {
      this.onEvent?.({...event, runId: this.j.id, time: this.time()} as SagaEvent)
    } catch {
      // A broken renderer must not leave the journal half-updated or skip a compensation.
    }
  }
}

function compensationState(comps: CompensationRecord[]): StepState {
  if (comps.some((c) => c.state === 'compensation-failed')) return 'compensation-failed'
  if (comps.every((c) => c.state === 'compensated')) return 'compensated'
  return 'compensating'
}

function isSkip(result: unknown): result is Skip {
  return typeof result === 'object' && result !== null && typeof (result as Skip).skipped === 'string'
}

function isNothingToDo(result: unknown): result is NothingToDo {
  return typeof result === 'object' && result !== null && typeof (result as NothingToDo).nothingToDo === 'string'
}
