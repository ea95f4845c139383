import assert from 'node:assert/strict'
import {mkdir, readdir, readFile, rm, stat, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {describe, it} from 'node:test'
import {JournalError} from '../../src/saga/errors.js'
import {defaultRunsDir, JournalStore, newRunId, writerIsAlive} from '../../src/saga/journal.js'
import {fakeClock, tempDir} from './fixtures.js'

describe('run journal', () => {
  it('lives in $XDG_STATE_HOME/homelab/runs, default ~/.local/state, ignoring a relative XDG value', () => {
    assert.equal(defaultRunsDir({XDG_STATE_HOME: '/x/state'}, '/home/u'), '/x/state/homelab/runs')
    assert.equal(defaultRunsDir({}, '/home/u'), '/home/u/.local/state/homelab/runs')
    assert.equal(defaultRunsDir({XDG_STATE_HOME: 'rel/state'}, '/home/u'), '/home/u/.local/state/homelab/runs')
    assert.equal(new JournalStore({env: {}, homedir: '/home/u'}).dir, '/home/u/.local/state/homelab/runs')
  })

  it('makes run ids that sort by time', () => {
    const a = newRunId(new Date('2025-05-14T10:30:12.345Z'), 'ffffff')
    const b = newRunId(new Date('2025-05-14T10:30:13.000Z'), '000000')
    const c = newRunId(new Date('2026-01-01T00:00:00.000Z'))
    assert.equal(a, '20250514-103012-ffffff')
    assert.match(c, /^20260101-000000-[0-9a-f]{6}$/)
    assert.deepEqual([c, b, a].sort(), [a, b, c])
  })

  it('creates, loads and round-trips a run, with private file modes', async (t) => {
    const dir = path.join(await tempDir(t), 'nested', 'runs')
    const store = new JournalStore({dir, now: fakeClock(), writer: {pid: 4242, hostname: 'laptop'}})
    const journal = await store.create({saga: 'k3s-upgrade', input: {target: 'v1.31.4+k3s1'}, data: {backup: null}})
    assert.equal(journal.file, path.join(dir, `${journal.id}.json`))
    await journal.update((j) => {
      j.data.backup = 'pre-upgrade-1'
    })

    const loaded = await store.load(journal.id)
    assert.deepEqual(loaded.state, journal.state)
    assert.equal(loaded.state.status, 'running')
    assert.deepEqual(loaded.state.writer, {pid: 4242, hostname: 'laptop'})
    assert.equal(loaded.state.createdAt, '2025-05-14T10:00:01.000Z')
    assert.match(journal.id, /^20250514-100001-[0-9a-f]{6}$/)
    assert.ok(loaded.state.updatedAt > loaded.state.createdAt)
    if (process.platform !== 'win32') {
      assert.equal((await stat(journal.file)).mode & 0o777, 0o600)
      assert.equal((await stat(dir)).mode & 0o777, 0o700)
    }
  })

  it('keeps the input as it was created: frozen, and written with every update', async (t) => {
    const store = new JournalStore({dir: await tempDir(t), now: fakeClock()})
    const input = {plan: {agents: [{name: 'agent-1', binDir: '/usr/local/bin'}]}, target: 'v1.31.5+k3s1'}
    const journal = await store.create({saga: 'k3s-upgrade', input})
    // Serialised once at creation: a later change would not reach the file, so it must throw.
    assert.throws(() => {
      input.plan.agents[0]!.binDir = '/opt/bin'
    }, TypeError)
    assert.throws(() => (journal.state.input as typeof input).plan.agents.push({name: 'x', binDir: '/'}), TypeError)
    await journal.update((j) => {
      j.status = 'succeeded'
    })
    const onDisk = JSON.parse(await readFile(journal.file, 'utf8')) as {input: unknown; status: string}
    assert.equal(onDisk.status, 'succeeded')
    assert.deepEqual(onDisk.input, {plan: {agents: [{name: 'agent-1', binDir: '/usr/local/bin'}]}, target: 'v1.31.5+k3s1'})
    assert.deepEqual((await store.load(journal.id)).state, journal.state)
  })

  it('never overwrites an existing run when an id repeats', async (t) => {
    const store = new JournalStore({dir: await tempDir(t), newId: () => 'same-id'})
    await store.create({saga: 's', input: 1})
    await assert.rejects(store.create({saga: 's', input: 2}), JournalError)
    assert.equal((await store.load('same-id')).state.input, 1)
  })

  it('lists newest first, filters by saga and status, and reports unreadable files', async (t) => {
    const dir = await tempDir(t)
    const store = new JournalStore({dir, now: fakeClock()})
    const first = await store.create({saga: 'k3s-upgrade', input: {}})
    const second = await store.create({saga: 'k3s-upgrade', input: {}})
    const other = await store.create({saga: 'other', input: {}})
    await second.update((j) => {
      j.status = 'interrupted'
    })
    await writeFile(path.join(dir, 'broken.json'), '{"schemaVersion": 1, "id": ')
    await writeFile(path.join(dir, 'future.json'), JSON.stringify({schemaVersion: 2}))
    await writeFile(path.join(dir, 'notes.txt'), 'not a run')

    const {runs, unreadable} = await store.list()
    assert.deepEqual(runs.map((r) => r.id), [other.id, second.id, first.id])
    assert.deepEqual(unreadable.map((u) => u.id).sort(), ['broken', 'future'])
    assert.match(unreadable.find((u) => u.id === 'future')?.error.message ?? '', /newer homelab/)

    assert.equal((await store.loadLatest({saga: 'k3s-upgrade'}))?.id, second.id)
    assert.equal((await store.loadLatest({status: ['running']}))?.id, other.id)
    assert.equal((await store.loadLatest({saga: 'k3s-upgrade', status: ['running']}))?.id, first.id)
    assert.equal(await store.loadLatest({status: ['succeeded']}), undefined)
    assert.deepEqual(await new JournalStore({dir: path.join(dir, 'missing')}).list(), {runs: [], unreadable: []})
  })

  it('refuses ids that are not file names, missing runs and damaged files with a hint', async (t) => {
    const dir = await tempDir(t)
    const store = new JournalStore({dir})
    await assert.rejects(store.load('../etc/passwd'), JournalError)
    await assert.rejects(store.load('nope'), (e: unknown) => e instanceof JournalError && /no run journal/.test(e.message) && Boolean(e.hint))
    await writeFile(path.join(dir, 'bad.json'), JSON.stringify({schemaVersion: 1, id: 'bad'}))
    await assert.rejects(store.load('bad'), (e: unknown) => e instanceof JournalError && /not valid: saga/.test(e.message))
  })

  it('keeps the file valid JSON while many concurrent updates land, and loses none of them', async (t) => {
    const store = new JournalStore({dir: await tempDir(t)})
    const journal = await store.create({saga: 's', input: {}, data: {nodes: {}}})
    let reading = true
    let reads = 0
    const reader = (async () => {
      // Bounded: stops when the writers are done, or after 20k reads at most.
      while (reading && reads < 20_000) {
        const text = await readFile(journal.file, 'utf8')
        JSON.parse(text) // throws (and fails the test) on a torn file
        reads++
      }
    })()
    // 20 parallel writers (like node actions), each making 10 updates one after another: many
    // separate file writes, with concurrent updates in between.
    const writers = Array.from({length: 20}, async (_, w) => {
      for (let i = 0; i < 10; i++) {
        await journal.update((j) => {
          ;(j.data.nodes as Record<string, number>)[`node-${w}-${i}`] = i
        })
      }
    })
    await Promise.all(writers)
    reading = false
    await reader
    assert.ok(reads > 0)

    const onDisk = JSON.parse(await readFile(journal.file, 'utf8'))
    assert.equal(Object.keys(onDisk.data.nodes).length, 200)
    assert.deepEqual((await readdir(path.dirname(journal.file))).filter((f) => f.endsWith('.tmp')), [], 'no temp files left')
  })

  it('reports a write failure to the caller and recovers on the next write', async (t) => {
    const dir = await tempDir(t)
    const store = new JournalStore({dir})
    const journal = await store.create({saga: 's', input: {}})
    // A file where the directory was: fails even for root, unlike permissions.
    await rm(dir, {recursive: true})
    await writeFile(dir, 'in the way')
    await assert.rejects(journal.update((j) => {
      j.data.a = 1
    }), (e: unknown) => e instanceof JournalError && Boolean(e.hint))
    await rm(dir)
    await mkdir(dir)
    await journal.update((j) => {
      j.data.b = 2
    })
    assert.deepEqual((await store.load(journal.id)).state.data, {a: 1, b: 2})
  })

  it('tells whether the writer of a journal is still alive on this host', () => {
    assert.equal(writerIsAlive({writer: {pid: process.pid, hostname: os.hostname()}}), true)
    assert.equal(writerIsAlive({writer: {pid: process.pid, hostname: 'elsewhere'}}, 'here'), undefined)
    // A pid above the kernel's default maximum cannot be alive.
    assert.equal(writerIsAlive({writer: {pid: 2 ** 22 + 1, hostname: 'here'}}, 'here'), false)
  })
})
