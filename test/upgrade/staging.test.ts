/**
 * Background staging: every node's new binary is pushed and verified beside the live one before
 * that node is cordoned (the agents' while the servers are upgraded), so only the swap is left
 * between a drain and a restart; a failed run removes what it staged and never swapped.
 */
import assert from 'node:assert/strict'
import {existsSync} from 'node:fs'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {setStartFailure} from '../sim/node-fixture.js'
import {AGENTS, FROM, SERVERS, TO, journals, lab, nodeStates, spawnCli, type SagaEventLine} from './helpers.js'

const STAGED = '.k3s.homelab-new'

function timeOf(events: readonly SagaEventLine[], node: string, pick: (e: SagaEventLine) => boolean): number {
  const found = events.find((e) => e.node === node && pick(e))
  assert.ok(found, `no such event for ${node}`)
  return Date.parse(String(found.time))
}

describe('background staging', {timeout: 240_000}, () => {
  it('stages every binary before its node is cordoned, the agents while the servers are upgraded', async (t) => {
    const homelab = await lab(t)
    const cli = spawnCli(t, homelab, ['k8s', 'upgrade', '--to', TO, '--yes', '--log-format', 'json', '--concurrency', '1'])
    const exit = await cli.exited
    assert.equal(exit.code, 0, cli.stderr().slice(-3000))
    const staged = (e: SagaEventLine) => e.type === 'log' && e.message === 'new binary staged and verified'
    const cordoned = (e: SagaEventLine) => e.type === 'log' && e.message === 'cordoned'
    for (const node of [...SERVERS, ...AGENTS]) {
      assert.ok(timeOf(cli.events, node, staged) < timeOf(cli.events, node, cordoned), `${node} was cordoned before its binary was staged`)
    }
    const lastServerDone = timeOf(cli.events, 'server-3', (e) => e.type === 'action-finished')
    for (const agent of AGENTS) assert.ok(timeOf(cli.events, agent, staged) < lastServerDone, `${agent} was not staged during the servers step`)
    for (const [name, state] of await nodeStates(homelab)) assert.equal(state.disk, TO, name)
    for (const node of homelab.nodes) assert.ok(!existsSync(join(node.fixture.binDir, STAGED)), `${node.fixture.name} keeps a staged binary`)
    const [run] = await journals(homelab)
    assert.ok(!run.compensations.some((c) => c.id === 'discard-staged'), 'the clean-up is dropped once every node is swapped')
  })

  it('a failed run removes the binaries it staged and never swapped in', async (t) => {
    const homelab = await lab(t)
    // agent-2 cannot start the new release; agent-3 (after it, one at a time) is staged already.
    await setStartFailure(homelab.node('agent-2').fixture, 'level=fatal msg="flag provided but not defined: -some-removed-flag"', {version: TO})
    const cli = spawnCli(t, homelab, ['k8s', 'upgrade', '--to', TO, '--yes', '--log-format', 'json', '--concurrency', '1'])
    const exit = await cli.exited
    assert.equal(exit.code, 4, cli.stderr().slice(-3000))
    assert.ok(cli.events.some((e) => e.node === 'agent-3' && e.message === 'new binary staged and verified'), 'agent-3 was staged')
    assert.ok(!cli.events.some((e) => e.node === 'agent-3' && e.message === 'cordoned'), 'agent-3 was never started')
    for (const node of homelab.nodes) assert.ok(!existsSync(join(node.fixture.binDir, STAGED)), `${node.fixture.name} keeps a staged binary`)
    for (const [name, state] of await nodeStates(homelab)) assert.equal(state.disk, FROM, name)
    const [run] = await journals(homelab)
    assert.equal(run.compensations.find((c) => c.id === 'discard-staged')?.state, 'compensated')
  })
})
