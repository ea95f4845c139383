/**
 * Issue 11: pre-flight's drain plans come from one list of pods and one of
 * PodDisruptionBudgets for every agent, not two requests per agent (200 agents: 2 requests, not
 * 400). Counted on the simulated API's audit log; the plan is the same as before.
 */
import assert from 'node:assert/strict'
import {test} from 'node:test'

import {TO, lab} from './helpers.js'

test('pre-flight of 8 agents lists pods once for the drain plans, with every agent\'s evictions in the plan', async (t) => {
  const homelab = await lab(t, {servers: 1, agents: 8})
  const mark = homelab.api.audit.at(-1)?.seq ?? 0
  const run = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--dry-run', '--json'])
  assert.equal(run.exitCode, 0, `${run.stdout}\n${run.stderr}`)
  const since = <E extends {seq: number}>(entries: readonly E[]) => entries.filter((e) => e.seq > mark)
  const podLists = since(homelab.api.audit.matching({verb: 'list', resource: 'pods'}))
  const perNode = podLists.filter((e) => /spec\.nodeName=/.test(e.query.fieldSelector ?? ''))
  assert.deepEqual(perNode.map((e) => e.query.fieldSelector), [], 'pods listed per node')
  assert.ok(podLists.length <= 3, `${podLists.length} pod lists: ${podLists.map((e) => `${e.path}?${new URLSearchParams(e.query)}`).join(', ')}`)
  const pdbLists = since(homelab.api.audit.matching({verb: 'list', resource: 'poddisruptionbudgets'}))
  assert.ok(pdbLists.length <= 2, `${pdbLists.length} PDB lists`)
  const plan = JSON.parse(run.stdout).plans[0] as {drain: Array<{node: string; evict: string[]}>}
  assert.equal(plan.drain.length, 8)
  for (const report of plan.drain) assert.ok(report.evict.length > 0, `${report.node} has nothing to evict: ${JSON.stringify(report)}`)
})
