/**
 * --canary / --canary-nodes / --soak: the canary agents go first, the cluster soaks, then the
 * rest; a canary that fails during the soak is undone and no other agent is touched; a run that
 * crashed during the soak soaks again on --resume.
 */
import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {AGENTS, FROM, SERVERS, TO, cordonPatches, journals, lab, nodeStates, spawnCli} from './helpers.js'

describe('canary and soak', {timeout: 240_000}, () => {
  it('--canary 1 --soak 2s: the agent with the fewest pods to evict goes first, the soak is waited out, then the others', async (t) => {
    const homelab = await lab(t)
    const dry = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--dry-run', '--canary', '1', '--soak', '2s'])
    assert.equal(dry.exitCode, 0, dry.stderr)
    // agent-3 runs one demo pod to evict, agent-1 and agent-2 two each.
    assert.match(dry.stdout, /canary: agent-3 first, then a soak of 2s/)

    const result = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes', '--canary', '1', '--soak', '2s'])
    assert.equal(result.exitCode, 0, result.stdout + result.stderr)
    assert.match(result.stdout, /soaking 2s: watching agent-3 Ready and the workloads/)
    const agentPatches = homelab.api.audit.matching({verb: 'patch', resource: 'nodes'}).filter((e) => AGENTS.includes(String(e.name)) && e.code < 300)
    const cordons = cordonPatches(homelab).filter((p) => AGENTS.includes(p.node))
    assert.deepEqual(cordons.slice(0, 2).map((p) => `${p.node} ${p.cordon}`), ['agent-3 true', 'agent-3 false'], 'the canary is alone first')
    const canaryBack = agentPatches.find((e) => e.seq === cordons[1].seq)!
    const nextCordon = agentPatches.find((e) => e.seq === cordons[2].seq)!
    assert.ok(nextCordon.at - canaryBack.at >= 2000, `the others waited for the soak (${nextCordon.at - canaryBack.at} ms)`)
    for (const [name, state] of await nodeStates(homelab)) assert.equal(state.kubelet, TO, name)
    const [run] = await journals(homelab)
    assert.deepEqual(run.steps.filter((s) => ['canary', 'soak', 'agents'].includes(s.name)).map((s) => `${s.name} ${s.state}`), ['canary done', 'soak done', 'agents done'])
  })

  it('a canary NotReady during the soak is undone; no other agent is touched (exit 4)', async (t) => {
    const homelab = await lab(t)
    const cli = spawnCli(t, homelab, ['k8s', 'upgrade', '--to', TO, '--yes', '--canary-nodes', 'agent-2', '--soak', '20s', '--log-format', 'json'])
    await cli.waitForEvent((e) => typeof e.message === 'string' && e.message.startsWith('soaking'))
    homelab.api.nodes.setReady('agent-2', false)
    const exit = await cli.exited
    assert.equal(exit.code, 4, cli.stderr().slice(-3000))
    assert.match(cli.stdout() + cli.stderr(), /canary agent-2 is not Ready during the soak/)
    const states = await nodeStates(homelab)
    assert.equal(states.get('agent-2')?.kubelet, FROM)
    for (const name of SERVERS) assert.equal(states.get(name)?.kubelet, TO, `${name} is kept at the target: only the canary is undone`)
    for (const name of AGENTS.filter((a) => a !== 'agent-2')) assert.equal(states.get(name)?.kubelet, FROM, `${name} was never touched`)
    assert.equal(homelab.api.audit.matching({verb: 'create', resource: 'restores'}).length, 0, 'no Velero restore over the cluster')
    for (const [name, state] of states) assert.equal(state.cordoned, false, `${name} left cordoned`)
    assert.deepEqual([...new Set(cordonPatches(homelab).filter((p) => AGENTS.includes(p.node)).map((p) => p.node))], ['agent-2'])
  })

  it('a run killed during the soak soaks again on --resume, then finishes', async (t) => {
    const homelab = await lab(t)
    const cli = spawnCli(t, homelab, ['k8s', 'upgrade', '--to', TO, '--yes', '--canary', '1', '--soak', '3s', '--log-format', 'json'])
    await cli.waitForEvent((e) => typeof e.message === 'string' && e.message.startsWith('soaking'))
    cli.child.kill('SIGKILL')
    await cli.exited
    const resumed = await homelab.cli(['k8s', 'upgrade', '--resume', '--yes'])
    assert.equal(resumed.exitCode, 0, resumed.stdout + resumed.stderr)
    assert.match(resumed.stdout, /soaking 3s/)
    for (const [name, state] of await nodeStates(homelab)) {
      assert.equal(state.kubelet, TO, name)
      assert.equal(state.cordoned, false, name)
    }
  })

  it('refuses canary requests that cannot be met (exit 2, nothing changed)', async (t) => {
    const homelab = await lab(t)
    const mark = homelab.api.mark()
    for (const [args, message] of [
      [['--canary-nodes', 'server-1'], /--canary-nodes names server-1, which is not an agent this run upgrades/],
      [['--canary', '3'], /--canary 3 would leave no agent for after the soak/],
      [['--soak', '1m'], /--soak needs a canary/],
      [['--canary', '1', '--soak', 'soon'], /--soak: "soon" is not a duration/],
    ] as const) {
      const result = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes', ...args])
      assert.equal(result.exitCode, 2, `${args.join(' ')}: ${result.stderr}`)
      assert.match(result.stderr, message)
    }
    assert.equal(homelab.api.audit.writes().filter((e) => e.seq > mark).length, 0)
  })
})
