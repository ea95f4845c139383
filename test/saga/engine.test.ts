import assert from 'node:assert/strict'
import {readFile} from 'node:fs/promises'
import {describe, it} from 'node:test'
import {ConnectionError, ExitCode, PreflightError, UsageError} from '../../src/errors.js'
import {exitCodeFor, nothingToDo, rollbackRun, runSaga, skip} from '../../src/saga/engine.js'
import {NodeActionsFailedError, RunStateError} from '../../src/saga/errors.js'
import {JournalStore} from '../../src/saga/journal.js'
import type {StepDefinition} from '../../src/saga/types.js'
import {collect, type Comps, type Data, describeEvents, fakeClock, gate, type Input, newStore, tempDir, testSaga} from './fixtures.js'

type Step = StepDefinition<Input, Data, Comps>

/** A step that registers `undo:<name>` and optionally fails afterwards. */
function changing(name: string, options: {fail?: Error; ran?: string[]} = {}): Step {
  return {
    name,
    title: `Change ${name}`,
    async run(ctx) {
      options.ran?.push(name)
      await ctx.registerCompensation({id: name, handler: 'undo', params: {name}, description: `undo ${name}`})
      if (options.fail) throw options.fail
    },
  }
}

function failing(name: string, error: Error, ran?: string[]): Step {
  return {
    name,
    title: name,
    async run() {
      ran?.push(name)
      throw error
    },
  }
}

describe('saga engine', () => {
  it('runs steps in order and, on failure, undoes them in reverse', async (t) => {
    const store = await newStore(t)
    const ran: string[] = []
    const undone: string[] = []
    const saga = testSaga([changing('a', {ran}), changing('b', {ran}), failing('c', new Error('c broke'), ran), changing('d', {ran})], undone)
    const journal = await store.create({saga: saga.name, input: {target: 'v2'}})
    const result = await runSaga(saga, journal)

    assert.deepEqual(ran, ['a', 'b', 'c'])
    assert.deepEqual(undone, ['undo:b', 'undo:a'])
    assert.equal(result.outcome, 'compensated')
    assert.equal(exitCodeFor(result), ExitCode.compensated)
    assert.equal((result.error as Error).message, 'c broke')

    const onDisk = (await store.load(journal.id)).state
    assert.equal(onDisk.status, 'compensated')
    assert.deepEqual(onDisk.steps.map((s) => [s.name, s.state]), [['a', 'compensated'], ['b', 'compensated'], ['c', 'failed'], ['d', 'pending']])
    assert.equal(onDisk.steps[2]?.error?.message, 'c broke')
    assert.equal(onDisk.error?.message, 'c broke')
    assert.ok(onDisk.rollbackStartedAt)
    assert.deepEqual(onDisk.compensations.map((c) => [c.id, c.state]), [['a', 'compensated'], ['b', 'compensated']])
  })

  it('undoes exactly the nodes a step touched before it failed, newest first', async (t) => {
    const store = await newStore(t)
    const undone: string[] = []
    const touched: string[] = []
    const upgrade: Step = {
      name: 'agents',
      title: 'Upgrade agents',
      async run(ctx) {
        await ctx.actions(['n1', 'n2', 'n3'], {concurrency: 1}, async (a) => {
          touched.push(a.node)
          await a.registerCompensation({id: `cordon:${a.node}`, handler: 'uncordon', params: {node: a.node}, description: `uncordon ${a.node}`})
          await a.registerCompensation({id: `swap:${a.node}`, handler: 'undo', params: {name: a.node}, description: `restore ${a.node}`})
          if (a.node === 'n2') throw new ConnectionError('n2 went away', {hint: 'check n2'})
        })
      },
    }
    const saga = testSaga([upgrade], undone)
    const result = await runSaga(saga, await store.create({saga: saga.name, input: {target: 'v2'}}))

    assert.deepEqual(touched, ['n1', 'n2'])
    assert.deepEqual(undone, ['undo:n2', 'uncordon:n2', 'undo:n1', 'uncordon:n1'])
    assert.equal(result.outcome, 'compensated')
    assert.ok(result.error instanceof ConnectionError, 'a single node failure is rethrown as is')
    const step = result.journal.steps[0]
    assert.equal(step?.state, 'compensated')
    assert.deepEqual(Object.keys(step?.actions ?? {}), ['n1', 'n2'])
    assert.equal(step?.actions.n1?.state, 'compensated')
    assert.equal(step?.actions.n2?.state, 'compensated')
    assert.deepEqual(result.journal.compensations.map((c) => c.node), ['n1', 'n1', 'n2', 'n2'])
  })

  it('runs every compensation even when one fails, and says compensation is incomplete', async (t) => {
    const store = await newStore(t)
    const undone: string[] = []
    const events = collect()
    const withManual: Step = {
      name: 'b',
      title: 'b',
      async run(ctx) {
        await ctx.registerCompensation({
          id: 'b',
          handler: 'undo',
          params: {name: 'b'},
          description: 'undo b',
          manual: ['ssh b sudo mv /usr/local/bin/k3s.prev /usr/local/bin/k3s'],
        })
      },
    }
    const saga = testSaga([changing('a'), withManual, changing('c'), failing('d', new Error('d broke'))], undone, new Set(['b']))
    const result = await runSaga(saga, await store.create({saga: saga.name, input: {target: 'v2'}}), {onEvent: events.onEvent})

    assert.deepEqual(undone, ['undo:c', 'undo:a'])
    assert.equal(result.outcome, 'compensation-incomplete')
    assert.equal(exitCodeFor(result), ExitCode.compensationIncomplete)
    assert.equal(result.status, 'compensation-incomplete')
    assert.equal(result.compensationFailures.length, 1)
    const failure = result.compensationFailures[0]
    assert.equal(failure?.id, 'b')
    assert.equal(failure?.error?.message, 'cannot undo b')
    assert.deepEqual(failure?.manual, ['ssh b sudo mv /usr/local/bin/k3s.prev /usr/local/bin/k3s'])
    assert.deepEqual(result.journal.steps.map((s) => s.state), ['compensated', 'compensation-failed', 'compensated', 'failed'])
    assert.deepEqual(
      describeEvents(events.events).filter((e) => e.startsWith('compensation-') && !e.startsWith('compensation-registered')),
      ['compensation-started c', 'compensation-finished c', 'compensation-started b', 'compensation-failed b', 'compensation-started a', 'compensation-finished a'],
    )

    // A later rollback tries the failed one again (compensations are idempotent).
    const retried = await rollbackRun(testSaga(saga.steps as Step[], undone), await store.load(result.runId))
    assert.equal(retried.outcome, 'compensated')
    assert.deepEqual(undone, ['undo:c', 'undo:a', 'undo:b'])
    assert.equal(retried.journal.compensations.find((c) => c.id === 'b')?.attempts, 2)
  })

  it("onFailure 'stop' runs only the 'always' compensations and leaves the rest for resume or rollback", async (t) => {
    const store = await newStore(t)
    const undone: string[] = []
    let breakIt = true
    const server: Step = {
      name: 'servers',
      title: 'Upgrade servers',
      async run(ctx) {
        await ctx.action('s1', async (a) => {
          await a.registerCompensation({id: 'cordon:s1', handler: 'uncordon', params: {node: 's1'}, description: 'uncordon s1', always: true})
          await a.registerCompensation({id: 'swap:s1', handler: 'undo', params: {name: 's1'}, description: 'restore s1'})
          if (breakIt) throw new Error('s1 never became Ready')
          await a.dropCompensation('cordon:s1') // the step uncordoned it itself
        })
      },
    }
    const saga = testSaga([changing('backup'), server], undone)
    const first = await runSaga(saga, await store.create({saga: saga.name, input: {target: 'v2'}}), {onFailure: 'stop'})

    assert.equal(first.outcome, 'stopped')
    assert.equal(first.status, 'failed')
    assert.equal(exitCodeFor(first), ExitCode.compensationIncomplete)
    assert.deepEqual(undone, ['uncordon:s1'])
    assert.deepEqual(first.pendingCompensations.map((c) => c.id), ['backup', 'swap:s1'])
    assert.equal(first.journal.rollbackStartedAt, undefined)
    assert.equal(first.journal.steps[1]?.state, 'failed', "'stop' does not mark steps as compensated")

    // Resume after the cause is fixed: the cordon is registered again (armed anew) and dropped.
    breakIt = false
    const resumed = await runSaga(saga, await store.load(first.runId))
    assert.equal(resumed.outcome, 'succeeded')
    assert.deepEqual(resumed.journal.compensations.map((c) => [c.id, c.state]), [['backup', 'pending'], ['swap:s1', 'pending']])

    // A second, stopped run that is then rolled back from the journal alone.
    undone.length = 0
    breakIt = true
    const stopped = await runSaga(saga, await store.create({saga: saga.name, input: {target: 'v3'}}), {onFailure: 'stop'})
    const rolledBack = await rollbackRun(saga, await store.load(stopped.runId))
    assert.equal(rolledBack.outcome, 'compensated')
    assert.deepEqual(undone, ['uncordon:s1', 'undo:s1', 'undo:backup'])
    await assert.rejects(runSaga(saga, await store.load(stopped.runId)), RunStateError, 'a rolled-back run is not resumed')
  })

  it('refuses with exit 3 when a step throws a PreflightError before any change', async (t) => {
    const store = await newStore(t)
    const undone: string[] = []
    const ran: string[] = []
    const saga = testSaga([failing('preflight', new PreflightError('agent-2 cannot be drained', {hint: 'fix the PDB'}), ran), changing('b', {ran})], undone)
    const result = await runSaga(saga, await store.create({saga: saga.name, input: {target: 'v2'}}))
    assert.equal(result.outcome, 'refused')
    assert.equal(exitCodeFor(result), ExitCode.preflightRefused)
    assert.deepEqual(ran, ['preflight'])
    assert.equal(result.journal.status, 'failed')
    assert.deepEqual(result.journal.error, {name: 'PreflightError', message: 'agent-2 cannot be drained', hint: 'fix the PDB', exitCode: 3})

    // Any other error before a change keeps its own meaning; after a change it is a compensation.
    const usage = await runSaga(testSaga([failing('x', new UsageError('bad flag'))], undone), await store.create({saga: saga.name, input: {target: 'v2'}}))
    assert.equal(usage.outcome, 'failed')
    assert.equal(exitCodeFor(usage), ExitCode.usage)
    const late = await runSaga(testSaga([changing('a'), failing('x', new PreflightError('late'))], undone), await store.create({saga: saga.name, input: {target: 'v2'}}))
    assert.equal(late.outcome, 'compensated')
    assert.equal(exitCodeFor(late), ExitCode.compensated)
  })

  it('ends early with nothing-to-do and skips the remaining steps', async (t) => {
    const store = await newStore(t)
    const ran: string[] = []
    const preflight: Step = {name: 'preflight', title: 'Preflight', run: async () => nothingToDo('all nodes are at v2')}
    const saga = testSaga([preflight, changing('b', {ran})], [])
    const events = collect()
    const result = await runSaga(saga, await store.create({saga: saga.name, input: {target: 'v2'}}), {onEvent: events.onEvent})
    assert.equal(result.outcome, 'nothing-to-do')
    assert.equal(exitCodeFor(result), ExitCode.ok)
    assert.deepEqual(ran, [])
    assert.deepEqual(result.journal.steps.map((s) => [s.state, s.reason]), [['done', 'all nodes are at v2'], ['skipped', 'all nodes are at v2']])
    assert.ok(events.events.some((e) => e.type === 'step-skipped' && e.step === 'b' && e.reason === 'all nodes are at v2'))
  })

  it('runs node actions under the concurrency limit; the first failure stops new nodes and in-flight ones finish', async (t) => {
    const store = await newStore(t)
    const undone: string[] = []
    let inFlight = 0
    let maxInFlight = 0
    const started: string[] = []
    const finished: string[] = []
    const nodes = ['a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7']
    const agents: Step = {
      name: 'agents',
      title: 'Upgrade agents',
      async run(ctx) {
        await ctx.actions(nodes, {concurrency: 3}, async (a) => {
          started.push(a.node)
          inFlight++
          maxInFlight = Math.max(maxInFlight, inFlight)
          try {
            await a.registerCompensation({id: a.node, handler: 'undo', params: {name: a.node}, description: `restore ${a.node}`})
            for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve))
            if (a.node === 'a4' || a.node === 'a5') throw new Error(`${a.node} drain blocked`)
            finished.push(a.node)
          } finally {
            inFlight--
          }
        })
      },
    }
    const result = await runSaga(testSaga([agents], undone), await store.create({saga: 'test-saga', input: {target: 'v2'}}))

    assert.equal(maxInFlight, 3)
    assert.ok(!started.includes('a7'), 'no node starts after the first failure')
    assert.ok(started.length < nodes.length)
    const actions = result.journal.steps[0]?.actions ?? {}
    assert.deepEqual(Object.keys(actions).sort(), [...started].sort(), 'every started node has a record')
    for (const node of started) {
      assert.ok(finished.includes(node) || node === 'a4' || node === 'a5', `${node} ran to its end`)
    }
    // Two nodes failing together: both are reported.
    assert.ok(result.error instanceof NodeActionsFailedError)
    assert.deepEqual(result.error.failures.map((f) => f.node), ['a4', 'a5'])
    assert.deepEqual([...undone].sort(), started.map((n) => `undo:${n}`).sort())
    assert.equal(result.outcome, 'compensated')
  })

  it('on abort lets the node in flight finish, saves the journal, and resume finishes the rest', async (t) => {
    const dir = await tempDir(t)
    const store = new JournalStore({dir, now: fakeClock()})
    const undone: string[] = []
    const runs: Record<string, number> = {}
    const actionsRun: string[] = []
    const controller = new AbortController()
    const inFlight = gate()
    const backup: Step = {
      name: 'backup',
      title: 'Backup',
      async run(ctx) {
        runs.backup = (runs.backup ?? 0) + 1
        await ctx.updateData((d) => {
          d.backup = `pre-upgrade-${runs.backup}`
        })
      },
    }
    const agents: Step = {
      name: 'agents',
      title: 'Agents',
      async run(ctx) {
        runs.agents = (runs.agents ?? 0) + 1
        await ctx.actions(['a1', 'a2', 'a3', 'a4'], {concurrency: 2}, async (a) => {
          actionsRun.push(a.node)
          await a.registerCompensation({id: a.node, handler: 'undo', params: {name: a.node}, description: a.node})
          if (a.node === 'a2' && !a.signal.aborted) {
            controller.abort() // Ctrl-C while a1 and a2 are in flight
            await inFlight.wait
          }
        })
      },
    }
    const saga = testSaga([backup, agents], undone)
    const journal = await store.create({saga: saga.name, input: {target: 'v2'}})
    const pending = runSaga(saga, journal, {signal: controller.signal})
    setImmediate(inFlight.release)
    const result = await pending

    assert.equal(result.outcome, 'interrupted')
    assert.equal(exitCodeFor(result), ExitCode.interrupted)
    assert.deepEqual(undone, [], 'no compensation on interrupt')
    assert.deepEqual(actionsRun, ['a1', 'a2'])
    const saved = JSON.parse(await readFile(journal.file, 'utf8'))
    assert.equal(saved.status, 'interrupted')
    assert.equal(saved.steps[0].state, 'done')
    assert.equal(saved.steps[1].state, 'interrupted')
    assert.deepEqual(Object.fromEntries(Object.entries(saved.steps[1].actions).map(([n, a]) => [n, (a as {state: string}).state])), {a1: 'done', a2: 'done'})

    // A new process: a fresh store and saga object, resuming from the file.
    const events = collect()
    const resumed = await runSaga(testSaga([backup, agents], undone), await new JournalStore({dir}).load(journal.id), {onEvent: events.onEvent})
    assert.equal(resumed.outcome, 'succeeded')
    assert.deepEqual(runs, {backup: 1, agents: 2}, 'the done step is not run again')
    assert.deepEqual(actionsRun, ['a1', 'a2', 'a3', 'a4'], 'done nodes are not run again')
    assert.equal(resumed.journal.data.backup, 'pre-upgrade-1')
    assert.deepEqual(
      describeEvents(events.events).filter((e) => e.includes('skipped')),
      ['step-skipped backup', 'action-skipped agents/a1', 'action-skipped agents/a2'],
    )
    assert.equal(events.events[0]?.type === 'run-started' && events.events[0].resumed, true)
  })

  it('gives steps their previous record on resume', async (t) => {
    const store = await newStore(t)
    let attempt = 0
    const seen: Array<string | undefined> = []
    const step: Step = {
      name: 'servers',
      title: 'Servers',
      async run(ctx) {
        attempt++
        seen.push(ctx.previous ? `${ctx.previous.state}:${Object.keys(ctx.previous.actions).join(',')}` : undefined)
        await ctx.action('s1', async () => {})
        await ctx.action('s2', async (a) => {
          if (attempt === 1) throw new Error('s2 failed')
          assert.equal(a.previousAction?.state, 'failed')
          return skip('already at v2')
        })
      },
    }
    const saga = testSaga([step], [])
    const first = await runSaga(saga, await store.create({saga: saga.name, input: {target: 'v2'}}), {onFailure: 'stop'})
    assert.equal(first.outcome, 'failed', 'nothing was registered, so nothing changed')
    const second = await runSaga(saga, await store.load(first.runId))
    assert.equal(second.outcome, 'succeeded')
    assert.deepEqual(seen, [undefined, 'failed:s1,s2'])
    assert.equal(second.journal.steps[0]?.attempts, 2)
    assert.deepEqual(second.journal.steps[0]?.actions.s2, {node: 's2', state: 'skipped', startedAt: second.journal.steps[0]?.actions.s2?.startedAt, finishedAt: second.journal.steps[0]?.actions.s2?.finishedAt, reason: 'already at v2'})
  })

  it('rolls back a crashed run from the journal alone, in a new engine, by handler name', async (t) => {
    const dir = await tempDir(t)
    const crashed = new JournalStore({dir, now: fakeClock()})
    const atCrashPoint = gate()
    const never = new Promise<void>(() => {})
    const crashingSaga = testSaga([
      changing('backup'),
      {
        name: 'agents',
        title: 'Agents',
        async run(ctx) {
          await ctx.actions(['a1', 'a2'], {concurrency: 2}, async (a) => {
            await a.registerCompensation({id: `cordon:${a.node}`, handler: 'uncordon', params: {node: a.node}, description: `uncordon ${a.node}`})
            await a.registerCompensation({id: `swap:${a.node}`, handler: 'undo', params: {name: `binary-${a.node}`}, description: `restore ${a.node}`})
            if (a.node === 'a2') {
              atCrashPoint.release()
              await never // the process is "killed" here
            }
          })
        },
      },
    ], [])
    const journal = await crashed.create({saga: crashingSaga.name, input: {target: 'v2'}})
    void runSaga(crashingSaga, journal) // abandoned, like a SIGKILLed process
    await atCrashPoint.wait
    await journal.flush()

    // New process: only the file and the saga definition (fresh handlers) are shared.
    const undone: string[] = []
    const events = collect()
    const freshSaga = testSaga([], undone)
    const loaded = await new JournalStore({dir}).load(journal.id)
    assert.equal(loaded.state.status, 'running')
    // The two agents ran in parallel, so their registrations interleave; undo is their exact reverse.
    const registered = loaded.state.compensations.map((c) => c.id)
    assert.deepEqual([...registered].sort(), ['backup', 'cordon:a1', 'cordon:a2', 'swap:a1', 'swap:a2'])
    assert.ok(registered.indexOf('cordon:a1') < registered.indexOf('swap:a1'))
    const result = await rollbackRun(freshSaga, loaded, {onEvent: events.onEvent})

    assert.equal(result.outcome, 'compensated')
    const asUndone: Record<string, string> = {
      backup: 'undo:backup', 'cordon:a1': 'uncordon:a1', 'cordon:a2': 'uncordon:a2', 'swap:a1': 'undo:binary-a1', 'swap:a2': 'undo:binary-a2',
    }
    assert.deepEqual(undone, registered.reverse().map((id) => asUndone[id]))
    assert.equal(undone.at(-1), 'undo:backup')
    const onDisk = (await new JournalStore({dir}).load(journal.id)).state
    assert.equal(onDisk.status, 'compensated')
    assert.deepEqual(onDisk.steps.map((s) => s.state), ['compensated', 'compensated'])
    assert.deepEqual(events.events.filter((e) => e.type === 'compensation-finished').length, 5)
    assert.equal(events.events[0]?.type === 'run-started' && events.events[0].mode, 'rollback')
  })

  it('on abort during compensation, keeps the rest pending and leaves the run to rollback', async (t) => {
    const store = await newStore(t)
    const undone: string[] = []
    const controller = new AbortController()
    const saga = testSaga([changing('a'), changing('b'), changing('c'), failing('d', new Error('d broke'))], undone)
    // Ctrl-C while the first compensation (c) runs: it finishes, b and a are not started.
    const interrupting = {...saga, compensations: {...saga.compensations, async undo(p: {name: string}, ctx: Parameters<typeof saga.compensations.undo>[1]) {
      if (p.name === 'c') controller.abort()
      await saga.compensations.undo(p, ctx)
    }}}
    const result = await runSaga(interrupting, await store.create({saga: saga.name, input: {target: 'v2'}}), {signal: controller.signal})
    assert.equal(result.outcome, 'interrupted')
    assert.equal(exitCodeFor(result), ExitCode.interrupted)
    assert.deepEqual(undone, ['undo:c'])
    assert.deepEqual(result.pendingCompensations.map((c) => c.id), ['a', 'b'])
    assert.equal(result.journal.error?.message, 'd broke', 'the failure that started the undo is kept')

    await assert.rejects(runSaga(saga, await store.load(result.runId)), RunStateError, 'half undone: only rollback may go on')
    const finished = await rollbackRun(saga, await store.load(result.runId))
    assert.equal(finished.outcome, 'compensated')
    assert.deepEqual(undone, ['undo:c', 'undo:b', 'undo:a'])
  })

  it('records an unknown handler in an old journal as a failed compensation and runs the others', async (t) => {
    const store = await newStore(t)
    const journal = await store.create({saga: 'test-saga', input: {target: 'v2'}})
    await journal.update((j) => {
      j.status = 'failed'
      for (const [id, handler] of [['a', 'undo'], ['b', 'retiredHandler']]) {
        j.compensations.push({id, handler, params: {name: id}, description: `undo ${id}`, step: 'x', always: false, state: 'pending', registeredAt: '2025-01-01T00:00:00.000Z', attempts: 0})
      }
    })
    const undone: string[] = []
    const result = await rollbackRun(testSaga([], undone), journal)
    assert.deepEqual(undone, ['undo:a'])
    assert.equal(result.outcome, 'compensation-incomplete')
    assert.match(result.compensationFailures[0]?.error?.message ?? '', /no compensation handler named "retiredHandler"/)
  })

  it('refuses to resume another saga, a rolled-back run, or to roll back a succeeded run', async (t) => {
    const store = await newStore(t)
    const saga = testSaga([changing('a')], [])
    const other = await store.create({saga: 'other-saga', input: {}})
    await assert.rejects(runSaga(saga, other), RunStateError)
    await assert.rejects(rollbackRun(saga, other), RunStateError)

    const done = await runSaga(saga, await store.create({saga: saga.name, input: {target: 'v2'}}))
    assert.equal(done.outcome, 'succeeded')
    await assert.rejects(rollbackRun(saga, await store.load(done.runId)), RunStateError)
    const again = await runSaga(saga, await store.load(done.runId))
    assert.equal(again.outcome, 'succeeded', 'resuming a finished run is a no-op')

    const renamed = testSaga([{...changing('a'), name: 'a-renamed'}], [])
    await assert.rejects(runSaga(renamed, await store.load(done.runId)), RunStateError)
  })

  it('fails the step when it registers a handler the saga does not have', async (t) => {
    const store = await newStore(t)
    const bad: Step = {
      name: 'bad',
      title: 'bad',
      async run(ctx) {
        // @ts-expect-error: the types already refuse this; the engine must too
        await ctx.registerCompensation({id: 'x', handler: 'nope', params: {}, description: 'x'})
      },
    }
    const result = await runSaga(testSaga([bad], []), await store.create({saga: 'test-saga', input: {target: 'v2'}}))
    assert.equal(result.outcome, 'failed')
    assert.match(result.journal.error?.message ?? '', /unknown compensation handler "nope"/)
  })

  it('emits events in order, and a throwing listener changes nothing', async (t) => {
    const store = await newStore(t)
    const events = collect()
    const saga = testSaga([
      {name: 'preflight', title: 'Preflight', async run(ctx) {
        ctx.log('info', 'all nodes Ready')
      }},
      {name: 'agents', title: 'Agents', async run(ctx) {
        await ctx.action('a1', async (a) => {
          a.log('debug', 'cordoned')
          await a.registerCompensation({id: 'u', handler: 'uncordon', params: {node: 'a1'}, description: 'uncordon a1'})
        })
        await ctx.action('a2', async () => skip('already at v2'))
      }},
      {name: 'cleanup', title: 'Cleanup', run: async () => skip('nothing to clean')},
    ], [])
    const journal = await store.create({saga: saga.name, input: {target: 'v2'}})
    const result = await runSaga(saga, journal, {onEvent: (e) => {
      events.onEvent(e)
      throw new Error('renderer bug')
    }})
    assert.equal(result.outcome, 'succeeded')
    assert.deepEqual(describeEvents(events.events), [
      'run-started',
      'step-started preflight',
      'log preflight',
      'step-finished preflight',
      'step-started agents',
      'action-started agents/a1',
      'log agents/a1',
      'compensation-registered agents/a1',
      'action-finished agents/a1',
      'action-started agents/a2',
      'action-skipped agents/a2',
      'step-finished agents',
      'step-started cleanup',
      'step-skipped cleanup',
      'run-finished',
    ])
    assert.ok(events.events.every((e) => e.runId === journal.id))
    const times = events.events.map((e) => e.time)
    assert.deepEqual([...times].sort(), times, 'times come from the injected clock, in order')
    const last = events.events.at(-1)
    assert.ok(last?.type === 'run-finished' && last.outcome === 'succeeded' && last.status === 'succeeded')
  })

  it('leaves no timers behind', async (t) => {
    const store = await newStore(t)
    const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
    await runSaga(testSaga([changing('a'), failing('b', new Error('x'))], []), await store.create({saga: 'test-saga', input: {target: 'v2'}}))
    assert.equal(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length, before)
  })
})
