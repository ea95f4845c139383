/**
 * `plan generate --offline` asks nothing over the network: not the cluster, and not the channel
 * server. A followed channel is written as its URL, unresolved; a channel to pin cannot be
 * resolved offline and is refused (exit 2) before anything is printed.
 */
import assert from 'node:assert/strict'
import {writeFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'

import {parseAllDocuments} from 'yaml'

import {ExitCode, UsageError} from '../src/errors.js'
import {generatePlans} from '../src/suc/generate.js'
import {startChannelServer, type ChannelServer} from './sim/channel-server.js'
import {cli, defaultConfig, requireBuiltCli, startSucCluster, type SucCluster} from './suc-fixture.js'

const noNetwork: typeof fetch = async (input) => assert.fail(`asked the network: ${String(input)}`)
const noCluster = () => assert.fail('asked the cluster')

describe('generatePlans with offline: true', () => {
  const deps = {config: defaultConfig(), fetch: noNetwork, kube: noCluster}

  it('writes a followed channel as its URL without resolving it, whatever the cluster mode', async () => {
    for (const cluster of ['auto', 'required', 'offline'] as const) {
      const generated = await generatePlans(deps, {to: 'stable', followChannel: true, offline: true, cluster})
      assert.equal(generated.target.kind, 'channel')
      assert.equal(generated.target.kind === 'channel' ? generated.target.resolved : 'no', undefined)
      assert.deepEqual(generated.plans.map((p) => [p.spec.channel, p.spec.version]), [
        ['https://update.k3s.io/v1-release/channels/stable', undefined],
        ['https://update.k3s.io/v1-release/channels/stable', undefined],
      ])
      assert.equal(generated.check, undefined)
      assert.ok(generated.warnings.some((w) => /--offline: https:\/\/update\.k3s\.io\/v1-release\/channels\/stable was not asked/.test(w)), generated.warnings.join('\n'))
      assert.ok(generated.warnings.some((w) => /upgrades whenever that channel moves, and no version check/.test(w)))
      assert.match(generated.yaml, /^# system-upgrade-controller plans for k3s channel https:\/\/update\.k3s\.io\/v1-release\/channels\/stable, written by/)
    }
  })

  it('refuses a channel to pin, with the ways out', async () => {
    await assert.rejects(generatePlans(deps, {to: 'v1.31', offline: true, cluster: 'auto'}), (error: UsageError) => {
      assert.ok(error instanceof UsageError)
      assert.equal(error.exitCode, ExitCode.usage)
      assert.match(error.message, /^--offline: the channel v1\.31 cannot be resolved without asking https:\/\/update\.k3s\.io\/v1-release\/channels\/v1\.31$/)
      assert.match(error.hint ?? '', /pass a version with --to, add --follow-channel .*, or drop --offline/)
      return true
    })
  })

  it('pins a version without asking anything', async () => {
    const generated = await generatePlans(deps, {to: 'v1.31.5+k3s1', offline: true, cluster: 'auto'})
    assert.deepEqual(generated.plans.map((p) => p.spec.version), ['v1.31.5+k3s1', 'v1.31.5+k3s1'])
  })
})

describe('homelab k8s plan generate --offline against a channel server and a cluster', () => {
  let c: SucCluster
  let channels: ChannelServer
  let config: string
  before(async () => {
    requireBuiltCli()
    c = await startSucCluster({servers: 1, agents: 1, controller: false})
    channels = await startChannelServer({channels: {stable: 'v1.31.5+k3s1'}})
    config = path.join(c.dir, 'homelab.yaml')
    await writeFile(config, `discover: true\ninstall:\n  channelUrl: ${channels.url}\n`)
  })
  after(async () => {
    await channels?.stop()
    await c?.stop()
  })

  it('--to stable --follow-channel --offline: the channel URL in the plans, no request to either server', async () => {
    const apiBefore = c.api.audit.length
    const r = await cli(c, ['k8s', 'plan', 'generate', '--to', 'stable', '--follow-channel', '--offline', '--config', config])
    assert.equal(r.code, 0, r.stderr)
    const plans = parseAllDocuments(r.stdout).map((d) => d.toJS())
    assert.deepEqual(plans.map((p) => [p.metadata.name, p.spec.channel]), [['k3s-server', `${channels.url}/stable`], ['k3s-agent', `${channels.url}/stable`]])
    assert.match(r.stderr, /warning: --offline: .*\/stable was not asked/)
    assert.deepEqual(channels.requests, [], 'no request to the channel server')
    assert.equal(c.api.audit.length, apiBefore, 'no request to the API')
  })

  it('--json says the target is the unresolved channel', async () => {
    const r = await cli(c, ['k8s', 'plan', 'generate', '--to', 'stable', '--follow-channel', '--offline', '--json', '--config', config])
    assert.equal(r.code, 0, r.stderr)
    const result = JSON.parse(r.stdout) as {target: string; channel: string; followsChannel: boolean; clusterChecked: boolean}
    assert.deepEqual([result.target, result.channel, result.followsChannel, result.clusterChecked], ['stable', `${channels.url}/stable`, true, false])
    assert.deepEqual(channels.requests, [])
  })

  it('--to stable --offline: exit 2, nothing printed, nothing asked', async () => {
    const apiBefore = c.api.audit.length
    const r = await cli(c, ['k8s', 'plan', 'generate', '--to', 'stable', '--offline', '--config', config])
    assert.equal(r.code, 2, r.stderr)
    assert.equal(r.stdout, '')
    assert.match(r.stderr, /^homelab: --offline: the channel stable cannot be resolved without asking .*\/stable \(fix: pass a version with --to/)
    assert.deepEqual(channels.requests, [])
    assert.equal(c.api.audit.length, apiBefore)
  })
})
