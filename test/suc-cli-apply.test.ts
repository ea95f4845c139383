/**
 * The compiled CLI (`npm run build` first; `npm test` does) against the simulated API and the
 * simulated system-upgrade-controller, as a user runs it: a kubeconfig file, a cluster file,
 * exit codes, stdout and stderr.
 */
import assert from 'node:assert/strict'
import {writeFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'

import {generatePlans} from '../src/suc/generate.js'
import {serveControllerManifests} from './sim/suc-controller.js'
import {cli, defaultConfig, requireBuiltCli, startSucCluster, type SucCluster} from './suc-fixture.js'

before(requireBuiltCli)

describe('homelab k8s plan apply and status', () => {
  let c: SucCluster
  let served: Awaited<ReturnType<typeof serveControllerManifests>>
  before(async () => {
    c = await startSucCluster({servers: 1, agents: 2, api: {crds: {velero: false, suc: false}}, installed: false, suc: {requireDeployment: true}})
    served = await serveControllerManifests()
  })
  after(async () => {
    await served.close()
    await c.stop()
  })

  it('without the controller: exit 3 and how to install it', async () => {
    const r = await cli(c, ['k8s', 'plan', 'apply', '--to', 'v1.31.5+k3s1'])
    assert.equal(r.code, 3, r.stderr)
    assert.match(r.stderr, /system-upgrade-controller is not installed: missing the CustomResourceDefinition plans\.upgrade\.cattle\.io/)
    assert.match(r.stderr, /--install-controller/)
    assert.equal(c.api.audit.writes({includeDryRun: true}).length, 0)
  })

  it('--install-controller installs it from the given manifests, applies the plans; status --wait sees them complete', async () => {
    const r = await cli(c, [
      'k8s', 'plan', 'apply', '--to', 'v1.31.5+k3s1', '--install-controller',
      '--controller-manifest', `${served.url}/crd.yaml`, '--controller-manifest', `${served.url}/system-upgrade-controller.yaml`,
    ])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /^customresourcedefinition\.apiextensions\.k8s\.io\/plans\.upgrade\.cattle\.io created$/m)
    assert.match(r.stdout, /^deployment\.apps\/system-upgrade-controller created$/m)
    assert.match(r.stdout, /^plan\.upgrade\.cattle\.io\/k3s-server created$/m)
    assert.match(r.stdout, /^plan\.upgrade\.cattle\.io\/k3s-agent created$/m)
    assert.match(r.stdout, /Follow the upgrade: homelab k8s plan status --wait/)

    const wait = await cli(c, ['k8s', 'plan', 'status', '--wait', '--timeout', '20s', '--json'])
    assert.equal(wait.code, 0, wait.stderr)
    const report = JSON.parse(wait.stdout)
    assert.equal(report.outcome, 'complete')
    assert.deepEqual(report.plans.map((p: {name: string; done: string[]}) => [p.name, p.done]), [['k3s-server', ['server-1']], ['k3s-agent', ['agent-1', 'agent-2']]])
  })

  it('--dry-run --file: the server checks, nothing changes', async () => {
    const file = path.join(c.dir, 'next.yaml')
    await writeFile(file, (await generatePlans({config: defaultConfig()}, {to: 'v1.31.6+k3s1', cluster: 'offline'})).yaml)
    const r = await cli(c, ['k8s', 'plan', 'apply', '--file', file, '--dry-run'])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /^plan\.upgrade\.cattle\.io\/k3s-server configured \(server dry run\)$/m)
    assert.equal(c.api.store.get('plans.upgrade.cattle.io', 'system-upgrade', 'k3s-server')?.spec?.version, 'v1.31.5+k3s1')
  })

  it('a job that fails for good: exit 4, the reason, and the node left cordoned with the command', async () => {
    // Both agents at once: which one the controller picks first is up to its hash order.
    c.suc.failNext('agent-1', {kind: 'exit', exitCode: 1, message: 'k3s binary replaced but k3s did not come back: no space left on device'})
    const apply = await cli(c, ['k8s', 'plan', 'apply', '--to', 'v1.31.6+k3s1', '--agent-concurrency', '2'])
    assert.equal(apply.code, 0, apply.stderr)
    const r = await cli(c, ['k8s', 'plan', 'status', '--wait', '--timeout', '20s'])
    assert.equal(r.code, 4, r.stderr)
    assert.match(r.stdout, /^PLAN\s+TARGET\s+LATEST\s+HASH\s+COMPLETE\s+DONE\s+APPLYING\s+TO GO$/m)
    assert.match(r.stdout, /^k3s-server\s+v1\.31\.6\+k3s1\s+v1\.31\.6\+k3s1\s+[0-9a-f]{12}\s+True\s+1\/1\s+-\s+-$/m)
    assert.match(r.stdout, /^k3s-agent\s+v1\.31\.6\+k3s1\s+v1\.31\.6\+k3s1\s+[0-9a-f]{12}\s+False \(JobFailed\)\s+1\/2\s+-\s+agent-1$/m)
    assert.match(r.stdout, /k3s-agent on agent-1: failed, BackoffLimitExceeded/)
    assert.match(r.stdout, /no space left on device/)
    assert.match(r.stdout, /Left cordoned \(the controller uncordons only after success\): agent-1/)
    assert.match(r.stdout, /after fixing the cause: kubectl uncordon agent-1$/m)
    assert.match(r.stderr, /^homelab: plan k3s-agent failed on agent-1: BackoffLimitExceeded/m)
  })

  it('--wait that runs out of time exits 5', async () => {
    c.suc.pause()
    const apply = await cli(c, ['k8s', 'plan', 'apply', '--to', 'v1.31.7+k3s1', '--offline'])
    assert.equal(apply.code, 0, apply.stderr)
    const r = await cli(c, ['k8s', 'plan', 'status', '--wait', '--timeout', '1s', '--json'])
    assert.equal(r.code, 5, r.stderr)
    assert.equal(JSON.parse(r.stdout).outcome, 'timeout')
    const now = await cli(c, ['k8s', 'plan', 'status', '--json'])
    assert.equal(now.code, 0, 'without --wait, in progress is not an error')
    assert.equal(JSON.parse(now.stdout).outcome, 'in-progress')
    c.suc.resume()
  })
})
