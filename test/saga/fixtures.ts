import {mkdtemp, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type {TestContext} from 'node:test'
import {JournalStore} from '../../src/saga/journal.js'
import type {SagaDefinition, SagaEvent, StepDefinition} from '../../src/saga/types.js'

export interface Input {
  target: string
}
export type Data = Record<string, unknown>
/** Handler name -> params. */
export interface Comps {
  undo: {name: string}
  uncordon: {node: string}
}

/** A temp runs dir, removed after the test. */
export async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'homelab-saga-'))
  t.after(() => rm(dir, {recursive: true, force: true}))
  return dir
}

/** A clock that moves one second per call, so timestamps are distinct and predictable. */
export function fakeClock(start = '2025-05-14T10:00:00.000Z'): () => Date {
  let t = Date.parse(start)
  return () => new Date((t += 1000))
}

export async function newStore(t: TestContext): Promise<JournalStore> {
  return new JournalStore({dir: await tempDir(t), now: fakeClock()})
}

/**
 * A saga whose compensations append to `undone` (`undo:<name>`, `uncordon:<node>`) and fail
 * for names in `failing`.
 */
export function testSaga(
  steps: Array<StepDefinition<Input, Data, Comps>>,
  undone: string[],
  failing: ReadonlySet<string> = new Set(),
): SagaDefinition<Input, Data, Comps> {
  return {
    name: 'test-saga',
    steps,
    compensations: {
      async undo({name}) {
        await Promise.resolve()
        if (failing.has(name)) throw new Error(`cannot undo ${name}`)
        undone.push(`undo:${name}`)
      },
      async uncordon({node}) {
        await Promise.resolve()
        if (failing.has(node)) throw new Error(`cannot uncordon ${node}`)
        undone.push(`uncordon:${node}`)
      },
    },
  }
}

export function collect(): {events: SagaEvent[]; onEvent: (e: SagaEvent) => void} {
  const events: SagaEvent[] = []
  return {events, onEvent: (e) => events.push(e)}
}

/** `type step/node` per event, for order assertions. */
export function describeEvents(events: SagaEvent[]): string[] {
  return events.map((e) => {
    const where = [('step' in e ? e.step : undefined), ('node' in e ? e.node : undefined)].filter(Boolean).join('/')
    return where ? `${e.type} ${where}` : e.type
  })
}

/** Resolves when `release` is called; for holding a fake node action open. */
export function gate(): {wait: Promise<void>; release: () => void} {
  let release!: () => void
  const wait = new Promise<void>((resolve) => {
    release = resolve
  })
  return {wait, release}
}
