/**
 * hooks: preRun, preNode, postNode, postRun in order with their environment (read back from a
 * log the hooks write); a failing preRun refuses (exit 3, nothing touched), a failing preNode
 * fails that node and compensation runs; postRun sees every outcome; --dry-run lists the
 * hooks; --resume does not run again what finished.
 */
import assert from 'node:assert/strict'
import {readFile} from 'node:fs/promises'
import path from 'node:path'
import {describe, it} from 'node:test'

import type {Homelab} from '../sim/homelab.js'
import {FROM, TO, cordonPatches, journals, lab, nodeStates, spawnCli} from './helpers.js'

const LINE = 'echo "$HOMELAB_PHASE node=$HOMELAB_NODE role=$HOMELAB_ROLE $HOMELAB_FROM>$HOMELAB_TO outcome=$HOMELAB_OUTCOME run=$HOMELAB_RUN_ID" >> "$HOOK_LOG"'

function hooksConfig(extra: Record<string, unknown[]> = {}) {
  return {
    hooks: {
      preRun: [{shell: LINE}, ...(extra.preRun ?? [])],
      preNode: [...(extra.preNode ?? []), {shell: LINE}],
      postNode: [['sh', '-c', LINE]],
      postRun: [{shell: LINE, timeout: '10s'}],
    },
  }
}

async function hookLog(homelab: Homelab): Promise<string[]> {
  return (await readFile(path.join(homelab.root, 'hooks.log'), 'utf8').catch(() => '')).trim().split('\n').filter(Boolean)
}

async function labWithHooks(t: Parameters<typeof lab>[0], extra: Record<string, unknown[]> = {}): Promise<Homelab> {
  const homelab = await lab(t, {servers: 1, agents: 2, config: hooksConfig(extra)})
  homelab.env.HOOK_LOG = path.join(homelab.root, 'hooks.log')
  return homelab
}

describe('hooks', {timeout: 180_000}, () => {
  it('run in order with their environment, and show in the dry-run plan', async (t) => {
    const homelab = await labWithHooks(t)
    const dry = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--dry-run'])
    assert.equal(dry.exitCode, 0, dry.stderr)
    assert.match(dry.stdout, /preRun hooks: sh -c "echo/)
    assert.match(dry.stdout, /postNode hooks: sh -c "echo/)
    assert.deepEqual(await hookLog(homelab), [], 'a dry run runs no hook')

    const result = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes', '--concurrency', '1'])
    assert.equal(result.exitCode, 0, result.stdout + result.stderr)
    const [run] = await journals(homelab)
    const lines = await hookLog(homelab)
    assert.deepEqual(lines.map((l) => l.split(' ')[0] + ' ' + l.split(' ')[1]), [
      'preRun node=',
      'preNode node=server-1',
      'postNode node=server-1',
      'preNode node=agent-1',
      'postNode node=agent-1',
      'preNode node=agent-2',
      'postNode node=agent-2',
      'postRun node=',
    ])
    assert.equal(lines[1], `preNode node=server-1 role=server ${FROM}>${TO} outcome= run=${run.id}`)
    assert.equal(lines.at(-1), `postRun node= role= ${FROM}>${TO} outcome=succeeded run=${run.id}`)
    assert.deepEqual((run.data as {hooksDone?: string[]}).hooksDone?.sort(), ['postNode:agent-1', 'postNode:agent-2', 'postNode:server-1', 'postRun', 'preNode:agent-1', 'preNode:agent-2', 'preNode:server-1', 'preRun'])
  })

  it('a failing preRun refuses before any change (exit 3); postRun still runs and sees it', async (t) => {
    const homelab = await labWithHooks(t, {preRun: [['false']]})
    const result = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes'])
    assert.equal(result.exitCode, 3, result.stdout + result.stderr)
    assert.match(result.stdout + result.stderr, /preRun hook false exited with 1/)
    assert.deepEqual(cordonPatches(homelab), [])
    const lines = await hookLog(homelab)
    assert.equal(lines.length, 2)
    assert.match(lines[1], /^postRun .* outcome=refused /)
  })

  it('a failing preNode fails that node: compensated (exit 4), postRun sees compensated', async (t) => {
    const homelab = await labWithHooks(t, {preNode: [{shell: 'test "$HOMELAB_NODE" != agent-2'}]})
    const result = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes', '--concurrency', '1'])
    assert.equal(result.exitCode, 4, result.stdout + result.stderr)
    assert.match(result.stdout + result.stderr, /preNode hook sh -c "test \\"\$HOMELAB_NODE\\" != agent-2" for agent-2 exited with 1/)
    for (const [name, state] of await nodeStates(homelab)) {
      assert.equal(state.kubelet, FROM, `${name} put back`)
      assert.equal(state.cordoned, false, name)
    }
    assert.ok(!cordonPatches(homelab).some((p) => p.node === 'agent-2'), 'agent-2 was never touched')
    assert.match((await hookLog(homelab)).at(-1) ?? '', /^postRun .* outcome=compensated /)
  })

  it('--resume does not run again the hooks that finished', async (t) => {
    const homelab = await labWithHooks(t)
    const cli = spawnCli(t, homelab, ['k8s', 'upgrade', '--to', TO, '--yes', '--concurrency', '1', '--log-format', 'json'])
    await cli.waitForEvent((e) => e.type === 'action-started' && e.node === 'agent-1')
    cli.child.kill('SIGKILL')
    await cli.exited
    const resumed = await homelab.cli(['k8s', 'upgrade', '--resume', '--yes'])
    assert.equal(resumed.exitCode, 0, resumed.stdout + resumed.stderr)
    const counts = new Map<string, number>()
    for (const line of await hookLog(homelab)) {
      const key = line.split(' ').slice(0, 2).join(' ')
      counts.set(key, (counts.get(key) ?? 0) + 1)
    }
    assert.equal(counts.get('preRun node='), 1)
    assert.equal(counts.get('preNode node=server-1'), 1)
    assert.equal(counts.get('postNode node=server-1'), 1)
    assert.equal(counts.get('postNode node=agent-2'), 1)
    assert.equal(counts.get('postRun node='), 1, 'postRun runs for the run that finished')
  })
})
