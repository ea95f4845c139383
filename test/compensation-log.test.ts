/**
 * The lines a person reads while the upgrade saga undoes a node: the engine already says which
 * node a compensation is about, so the compensation's own message must not say it again
 * (`server-2: server-2: uncordoned`). The real compensations of the binary upgrade, run by the
 * saga engine after a failing step, rendered as the CLI renders them without a TTY.
 */
import assert from 'node:assert/strict'
import {test} from 'node:test'

import type {V1Node} from '@kubernetes/client-node'

import {describeEvent} from '../commands/_cli/events.js'
import {binaryUpgradeSaga, type UpgradeCompensations, type UpgradeData, type UpgradeInput} from '../sagas/binary-upgrade.js'
import {CORDONED_BY_ANNOTATION} from '../src/kube/nodes.js'
import {runSaga} from '../src/saga/engine.js'
import type {SagaDefinition, SagaEvent} from '../src/saga/types.js'
import type {UpgradeEvent} from '../src/upgrade/run-upgrade.js'
import {newStore} from './saga/fixtures.js'

const FROM = 'v1.31.4+k3s1'

test('compensation log lines name the node once', async (t) => {
  const store = await newStore(t)
  let runId = ''
  const patched: string[] = []
  // server-2 as the run left it: cordoned by this run, the old binary back in place, Ready at FROM.
  const liveNode = (name: string) =>
    ({
      metadata: {name, annotations: {[CORDONED_BY_ANNOTATION]: runId}},
      spec: {unschedulable: true},
      status: {nodeInfo: {kubeletVersion: FROM}, conditions: [{type: 'Ready', status: 'True'}]},
    }) as unknown as V1Node
  const kube = {
    // The API answers: the uncordon compensation waits for /readyz first.
    health: {readyz: async () => true},
    core: {
      readNode: async ({name}: {name: string}) => liveNode(name),
      patchNode: async ({name}: {name: string}) => {
        patched.push(name)
        return liveNode(name)
      },
    },
  }
  // The binary on disk already has the previous sha256: restoring it is "already" done, no restart.
  const transport = {node: 'server-2', run: async () => 'already\n', exec: async () => ({exitCode: 0, stdout: 'already\n', stderr: ''}), putFile: async () => {}, close: async () => {}}
  const inventoryNode = {name: 'server-2', host: '10.0.0.12', role: 'server', binDir: '/usr/local/bin', dataDir: '/var/lib/rancher/k3s'}
  const deps = {kube, inventory: {nodes: [inventoryNode]}, connect: async () => transport} as unknown as Parameters<typeof binaryUpgradeSaga>[0]
  const real = binaryUpgradeSaga(deps)

  const saga: SagaDefinition<UpgradeInput, UpgradeData, UpgradeCompensations> = {
    name: real.name,
    compensations: real.compensations,
    steps: [
      {
        name: 'servers',
        title: 'Upgrade servers',
        async run(ctx) {
          await ctx.actions(['server-2'], {concurrency: 1}, async (a) => {
            await a.registerCompensation({id: 'uncordon:server-2', handler: 'uncordon', params: {node: 'server-2'}, description: 'uncordon server-2', always: true})
            await a.registerCompensation({
              id: 'restore-binary:server-2',
              handler: 'restoreBinary',
              params: {node: 'server-2', role: 'server', binDir: '/usr/local/bin', previousSha256: 'a'.repeat(64), previousVersion: FROM, serviceManager: 'systemd'},
              description: `put k3s ${FROM} back on server-2`,
            })
            throw new Error('server-2 never became Ready')
          })
        },
      },
    ],
  }
  const input = {distribution: 'k3s', target: 'v1.32.0+k3s1', finalTarget: 'v1.32.0+k3s1', laterHops: [], timeouts: {apiReadyMs: 5000, nodeReadyMs: 5000}} as unknown as UpgradeInput
  const journal = await store.create({saga: saga.name, input})
  runId = journal.id
  const events: SagaEvent[] = []
  const result = await runSaga(saga, journal, {onEvent: (e) => events.push(e)})

  assert.equal(result.outcome, 'compensated', String(result.error))
  assert.deepEqual(patched, ['server-2'], 'the compensation uncordoned server-2')
  const logs = events.filter((e) => e.type === 'log')
  assert.deepEqual(
    logs.map((e) => [e.node, e.message]),
    [
      ['server-2', `back at ${FROM}`],
      ['server-2', 'uncordoned'],
    ],
  )
  const lines = logs.map((e) => describeEvent(e as UpgradeEvent))
  assert.deepEqual(lines, [`   server-2: back at ${FROM}`, '   server-2: uncordoned'])
})
