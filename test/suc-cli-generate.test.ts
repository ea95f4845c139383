/**
 * The compiled CLI (`npm run build` first; `npm test` does) against the simulated API and the
 * simulated system-upgrade-controller, as a user runs it: a kubeconfig file, a cluster file,
 * exit codes, stdout and stderr.
 */
import assert from 'node:assert/strict'
import {readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'

import {parseAllDocuments} from 'yaml'

import {startChannelServer, type ChannelServer} from './sim/channel-server.js'
import {cli, requireBuiltCli, startSucCluster, type SucCluster} from './suc-fixture.js'

before(requireBuiltCli)

describe('homelab k8s plan generate', () => {
  let c: SucCluster
  let channels: ChannelServer
  let config: string
  before(async () => {
    c = await startSucCluster({servers: 1, agents: 1, controller: false})
    channels = await startChannelServer({channels: {stable: 'v1.31.5+k3s1', 'v1.31': 'v1.31.5+k3s1'}})
    config = path.join(c.dir, 'homelab.yaml')
    await writeFile(config, `discover: true\ninstall:\n  channelUrl: ${channels.url}\nupgrade:\n  agentConcurrency: 3\n`)
  })
  after(async () => {
    await channels.stop()
    await c.stop()
  })

  it('resolves the channel, checks the live nodes and prints two Plans', async () => {
    const r = await cli(c, ['k8s', 'plan', 'generate', '--to', 'stable', '--config', config])
    assert.equal(r.code, 0, r.stderr)
    const plans = parseAllDocuments(r.stdout).map((d) => d.toJS())
    assert.deepEqual(plans.map((p) => [p.metadata.name, p.spec.version, p.spec.concurrency]), [['k3s-server', 'v1.31.5+k3s1', 1], ['k3s-agent', 'v1.31.5+k3s1', 3]])
    assert.doesNotMatch(r.stderr, /not checked/)
    assert.ok(channels.requests.some((p) => p.endsWith('/stable')))
    assert.equal(c.api.audit.writes({includeDryRun: true}).length, 0, 'generate writes nothing to the cluster')
    assert.ok(c.api.audit.matching({resource: 'nodes', verb: 'list'}).length > 0, 'it read the nodes')
  })

  it('refuses a downgrade with exit 3 and prints no YAML', async () => {
    const r = await cli(c, ['k8s', 'plan', 'generate', '--to', 'v1.31.3+k3s1', '--config', config])
    assert.equal(r.code, 3, r.stderr)
    assert.equal(r.stdout, '')
    assert.match(r.stderr, /^homelab: refusing plans for v1\.31\.3\+k3s1; nothing was written to the cluster:/)
    assert.match(r.stderr, /server-1 runs v1\.31\.4\+k3s1; v1\.31\.3\+k3s1 would be a downgrade/)
    assert.match(r.stderr, /\n  fix: pick a target of at least v1\.31\.4\+k3s1/)
  })

  it('--offline skips the cluster and --out writes the file', async () => {
    const out = path.join(c.dir, 'plans.yaml')
    const listsBefore = c.api.audit.length
    const r = await cli(c, ['k8s', 'plan', 'generate', '--to', 'v1.31.3+k3s1', '--offline', '--out', out, '--config', config])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, '')
    assert.match(r.stderr, /--offline: the plans were not checked/)
    assert.equal(parseAllDocuments(await readFile(out, 'utf8')).length, 2)
    assert.equal(c.api.audit.length, listsBefore, 'no request to the API')
  })

  it('--check-cluster without a kubeconfig is an error; without it, a note', async () => {
    const strict = await cli(c, ['k8s', 'plan', 'generate', '--to', 'v1.31.5+k3s1', '--check-cluster'], [])
    assert.equal(strict.code, 2, strict.stderr)
    assert.match(strict.stderr, /no kubeconfig found/)
    const relaxed = await cli(c, ['k8s', 'plan', 'generate', '--to', 'v1.31.5+k3s1'], [])
    assert.equal(relaxed.code, 0, relaxed.stderr)
    assert.match(relaxed.stderr, /warning: no usable kubeconfig .*\(--check-cluster makes that an error\)/)
  })

  it('bad flags exit 2 with the fix', async () => {
    const r = await cli(c, ['k8s', 'plan', 'generate', '--to', 'v1.31.5+k3s1', '--window', 'days=someday,start=1:00,end=2:00', '--offline'])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /homelab: --window: "someday" is not a day .*\(fix: write it as days=/)
  })
})

