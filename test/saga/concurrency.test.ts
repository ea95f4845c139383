import assert from 'node:assert/strict'
import {describe, it} from 'node:test'
import {UsageError} from '../../src/errors.js'
import {mapWithConcurrency} from '../../src/saga/concurrency.js'

const tick = () => new Promise<void>((resolve) => setImmediate(resolve))

describe('mapWithConcurrency', () => {
  it('never runs more than the limit at once and keeps item order in the outcomes', async () => {
    let inFlight = 0
    let maxInFlight = 0
    const items = Array.from({length: 12}, (_, i) => i)
    const outcomes = await mapWithConcurrency(items, 3, async (n) => {
      inFlight++
      maxInFlight = Math.max(maxInFlight, inFlight)
      // Uneven durations so that slots free up out of order.
      for (let i = 0; i < (n % 4) + 1; i++) await tick()
      inFlight--
      return n * 10
    })
    assert.equal(maxInFlight, 3)
    assert.deepEqual(outcomes.map((o) => (o.status === 'fulfilled' ? o.value : o.status)), items.map((n) => n * 10))
  })

  it('stops starting items after the first failure but lets the in-flight ones finish', async () => {
    const started: number[] = []
    const finished: number[] = []
    const outcomes = await mapWithConcurrency([0, 1, 2, 3, 4, 5], 2, async (n) => {
      started.push(n)
      if (n === 1) {
        await tick()
        throw new Error('node 1 broke')
      }
      // Item 2 starts after 0 finishes and is still running when 1 fails.
      for (let i = 0; i < (n === 2 ? 5 : 0); i++) await tick()
      finished.push(n)
      return n
    })
    assert.deepEqual(started, [0, 1, 2])
    assert.deepEqual(finished, [0, 2], 'item 2 was in flight when 1 failed and ran to its end')
    assert.deepEqual(outcomes.map((o) => o.status), ['fulfilled', 'rejected', 'fulfilled', 'not-started', 'not-started', 'not-started'])
    const failed = outcomes[1]
    assert.ok(failed?.status === 'rejected' && failed.error instanceof Error && failed.error.message === 'node 1 broke')
  })

  it('stops starting items once the signal is aborted, and a synchronous throw is an outcome', async () => {
    const controller = new AbortController()
    const outcomes = await mapWithConcurrency(['a', 'b', 'c', 'd'], 1, (item) => {
      if (item === 'b') controller.abort()
      if (item === 'a') throw new Error('sync')
      return Promise.resolve(item)
    }, controller.signal)
    assert.deepEqual(outcomes.map((o) => o.status), ['rejected', 'not-started', 'not-started', 'not-started'])

    const c2 = new AbortController()
    const o2 = await mapWithConcurrency(['a', 'b', 'c'], 1, async (item) => {
      if (item === 'b') c2.abort()
      return item
    }, c2.signal)
    assert.deepEqual(o2.map((o) => o.status), ['fulfilled', 'fulfilled', 'not-started'])
  })

  it('rejects a limit that is not a whole number of at least 1, and handles no items', async () => {
    await assert.rejects(mapWithConcurrency([1], 0, async (n) => n), UsageError)
    await assert.rejects(mapWithConcurrency([1], 1.5, async (n) => n), UsageError)
    assert.deepEqual(await mapWithConcurrency([], 4, async (n) => n), [])
  })
})
