import assert from 'node:assert/strict'
import {readFile, writeFile, mkdir} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {fileURLToPath} from 'node:url'

import {parseAllDocuments} from 'yaml'

import {ConfigError, ExitCode, PreflightError, UsageError} from '../src/errors.js'
import type {ClusterNode} from '../src/kube/nodes.js'
import {serverSideApply} from '../src/suc/apply.js'
import {buildPlans, checkImage} from '../src/suc/build.js'
import {checkPlansAgainstNodes} from '../src/suc/checks.js'
import {generatePlans, type GenerateRequest} from '../src/suc/generate.js'
import {formatLabelSelector, parseLabelSelector, parseTolerations, parseWindow} from '../src/suc/syntax.js'
import type {Plan} from '../src/suc/types.js'
import {parsePlanFile, planProblems} from '../src/suc/validate.js'
import {parseVersion} from '../src/versions/release-version.js'
import {sucPlanCrd} from './sim/kube-api/crds.js'
import {validateCustomResource} from './sim/kube-api/schema.js'
import {defaultConfig, startSucCluster, type SucCluster} from './suc-fixture.js'

const GOLDEN = path.join(path.dirname(fileURLToPath(import.meta.url)), 'golden', 'suc')
const UPDATE = process.env.UPDATE_GOLDEN === '1'

// The channel server's answer, without a network: a 302 to the release page, as update.k3s.io does.
const channels: Record<string, string> = {stable: 'v1.31.5+k3s1', latest: 'v1.32.1+k3s1', 'v1.31': 'v1.31.5+k3s1'}
const fakeChannelFetch: typeof fetch = async (input) => {
  const id = decodeURIComponent(String(input).split('/').at(-1) ?? '')
  const version = channels[id] ?? (id.startsWith('v1.31') ? 'v1.31.3+rke2r1' : undefined)
  if (!version) return new Response('not found', {status: 404})
  return new Response(null, {status: 302, headers: {location: `https://github.com/k3s-io/k3s/releases/tag/${encodeURIComponent(version)}`}})
}

interface Case {
  name: string
  request: Omit<GenerateRequest, 'cluster'>
  config?: Record<string, unknown>
}

// The main option combinations, each pinned by a golden file.
const cases: Case[] = [
  {name: 'pinned', request: {to: 'v1.31.5+k3s1'}},
  {name: 'channel-pinned', request: {to: 'stable'}, config: {upgrade: {agentConcurrency: 2, drain: {timeout: '2m', gracePeriod: 30}}}},
  {name: 'follow-channel', request: {to: 'v1.31', followChannel: true}},
  {name: 'rke2', request: {to: 'v1.31.3+rke2r1', distribution: 'rke2'}},
  {name: 'cordon-only', request: {to: 'v1.31.5+k3s1', cordonOnly: true, agentConcurrency: 3}},
  {name: 'window', request: {to: 'v1.31.5+k3s1', window: 'days=sat,sun,start=01:00,end=05:00,tz=Europe/Berlin'}},
  {name: 'tolerations', request: {to: 'v1.31.5+k3s1', tolerations: ['node-role.kubernetes.io/control-plane:NoSchedule', 'CriticalAddonsOnly=true:NoExecute']}},
  {
    name: 'private-image',
    request: {to: 'v1.31.5-k3s1', image: 'registry.lan:5000/mirror/k3s-upgrade', imagePullSecrets: ['regcred'], namespace: 'upgrades', namePrefix: 'lab-'},
  },
  {
    name: 'selectors',
    request: {to: 'v1.31.5+k3s1', serverSelector: 'node-role.kubernetes.io/control-plane=true,k3s-upgrade!=disabled', agentSelector: '!node-role.kubernetes.io/control-plane,k3s-upgrade notin (disabled,false)'},
    config: {upgrade: {drain: {podSelector: 'app!=critical', disableEviction: true, skipWaitForDeleteTimeout: 60, force: true}}},
  },
]

async function generate(c: Case) {
  return generatePlans(
    {config: defaultConfig(c.config), fetch: fakeChannelFetch},
    {...c.request, cluster: 'offline'},
  )
}

function allKeys(value: unknown, out: string[] = []): string[] {
  if (Array.isArray(value)) value.forEach((v) => allKeys(v, out))
  else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) out.push(k), allKeys(v, out)
  return out
}

describe('plan generate', () => {
  for (const c of cases) {
    it(`matches the golden file: ${c.name}`, async () => {
      const {yaml} = await generate(c)
      const file = path.join(GOLDEN, `${c.name}.yaml`)
      if (UPDATE) {
        await mkdir(GOLDEN, {recursive: true})
        await writeFile(file, yaml)
      }
      assert.equal(yaml, await readFile(file, 'utf8'), `${file} differs (UPDATE_GOLDEN=1 rewrites it after a deliberate change)`)
    })
  }

  it('every generated Plan fits the Plan CRD schema and our own rules', async () => {
    const schema = sucPlanCrd().spec!.versions[0].schema.openAPIV3Schema
    for (const c of cases) {
      const {yaml, server, agent} = await generate(c)
      // Read as kubectl reads it (sigs.k8s.io/yaml is YAML 1.1: an unquoted 01:00 would be 60).
      const docs = parseAllDocuments(yaml, {version: '1.1'}) as unknown as Array<{toJS(): Plan}>
      assert.equal(docs.length, 2, c.name)
      for (const plan of docs.map((d) => d.toJS())) {
        const copy = structuredClone(plan)
        const result = validateCustomResource(copy, schema)
        assert.deepEqual(result.causes, [], `${c.name}/${plan.metadata.name}: schema errors`)
        assert.deepEqual(result.unknownFields, [], `${c.name}/${plan.metadata.name}: fields the API server would drop`)
        assert.deepEqual(planProblems(plan).problems, [], `${c.name}/${plan.metadata.name}`)
        assert.ok(Number.isInteger(plan.spec.concurrency) && plan.spec.concurrency >= 1, 'concurrency ≥ 1')
        assert.equal(typeof plan.spec.upgrade.image, 'string')
        assert.ok(!allKeys(plan).includes('env'), 'envs, never env')
        assert.equal(plan.metadata.namespace, c.request.namespace ?? 'system-upgrade')
      }
      // prepare waits for the server plan by name, and both name the same version or channel.
      assert.deepEqual(agent.spec.prepare?.args, ['prepare', server.metadata.name])
      assert.equal(agent.spec.version, server.spec.version)
      assert.equal(agent.spec.channel, server.spec.channel)
      assert.equal(agent.spec.prepare?.image, agent.spec.upgrade.image)
      assert.equal(server.spec.concurrency, 1)
      assert.equal(server.spec.cordon, true)
    }
  })

  it('a schema-breaking Plan is caught by the same checks (they can fail)', () => {
    const schema = sucPlanCrd().spec!.versions[0].schema.openAPIV3Schema
    const bad = {apiVersion: 'upgrade.cattle.io/v1', kind: 'Plan', metadata: {name: 'x'}, spec: {concurrency: 'one', upgrade: {image: 'i', env: [{name: 'A', value: 'b'}]}}}
    const result = validateCustomResource(structuredClone(bad), schema)
    assert.ok(result.causes.some((c) => c.field === 'spec.concurrency'))
    assert.deepEqual(result.unknownFields, ['spec.upgrade.env'])
    const ours = planProblems(bad).problems.join('\n')
    assert.match(ours, /concurrency must be a whole number/)
    assert.match(ours, /env is not a Plan field.*envs/)
    assert.match(ours, /version or channel/)
  })

  it('resolves a channel now and pins it, or writes the channel URL with --follow-channel', async () => {
    const pinned = await generate(cases[1])
    assert.equal(pinned.server.spec.version, 'v1.31.5+k3s1')
    assert.equal(pinned.server.spec.channel, undefined)
    assert.equal(pinned.target.kind, 'version')
    const follow = await generate(cases[2])
    assert.equal(follow.server.spec.channel, 'https://update.k3s.io/v1-release/channels/v1.31')
    assert.equal(follow.server.spec.version, undefined)
    assert.ok(follow.warnings.some((w) => /upgrades whenever that channel moves \(today v1\.31\.5\+k3s1\)/.test(w)))
    await assert.rejects(generate({name: 'x', request: {to: 'v1.31.5+k3s1', followChannel: true}}), UsageError)
  })

  it('takes drain settings and agent concurrency from the cluster file', async () => {
    const {agent} = await generate(cases[1])
    assert.equal(agent.spec.concurrency, 2)
    assert.deepEqual(agent.spec.drain, {timeout: '2m', ignoreDaemonSets: true, deleteEmptydirData: true, force: false, gracePeriod: 30})
  })

  it('warns when the drain timeout outlasts the controller\'s Job deadline', async () => {
    const {warnings} = await generate({name: 'x', request: {to: 'v1.31.5+k3s1'}, config: {upgrade: {drain: {timeout: '15m'}}}})
    assert.ok(warnings.some((w) => /not shorter than the controller's default Job deadline \(10m\)/.test(w)))
  })

  it('refuses bad flag values with the form that works', async () => {
    const bad: Array<[Partial<GenerateRequest>, RegExp]> = [
      [{image: 'rancher/k3s-upgrade:v1.31.5-k3s1'}, /carries a tag/],
      [{window: 'days=someday,start=1:00,end=2:00'}, /"someday" is not a day/],
      [{window: 'days=sat,start=25:00,end=02:00'}, /start "25:00" is not a 24-hour time/],
      [{window: 'days=sat,start=01:00,end=02:00,tz=Mars/Olympus'}, /not a time zone/],
      [{serverSelector: 'a in b'}, /is not a label requirement/],
      [{tolerations: ['key:NoWhere']}, /unknown effect "NoWhere"/],
      [{namePrefix: 'Upper_'}, /not a valid name/],
      [{agentConcurrency: 0}, /at least 1/],
      [{to: 'v1.31.5'}, /release number is missing/],
      [{to: 'v1.31.5+k3s1', distribution: 'rke2'}, /k3s version, but this cluster runs rke2/],
    ]
    for (const [request, message] of bad) {
      await assert.rejects(generate({name: 'x', request: {to: 'v1.31.5+k3s1', ...request}}), (error: Error & {exitCode?: number}) => {
        assert.match(error.message, message)
        assert.equal(error.exitCode, ExitCode.usage, error.message)
        return true
      })
    }
  })

  it('asks the cluster only as told: required without a kubeconfig fails, auto notes it', async () => {
    const request = {to: 'v1.31.5+k3s1'}
    const noKube = () => {
      throw new ConfigError('no kubeconfig found', {hint: 'x'})
    }
    await assert.rejects(generatePlans({config: defaultConfig(), kube: noKube}, {...request, cluster: 'required'}), ConfigError)
    const auto = await generatePlans({config: defaultConfig(), kube: noKube}, {...request, cluster: 'auto'})
    assert.equal(auto.check, undefined)
    assert.match(auto.clusterSkipped ?? '', /no usable kubeconfig/)
  })
})

describe('parsing the flag syntaxes', () => {
  it('label selectors', () => {
    assert.deepEqual(parseLabelSelector('a=b,c!=d,e in (x, y),f notin (z),g,!h'), {
      matchLabels: {a: 'b'},
      matchExpressions: [
        {key: 'c', operator: 'NotIn', values: ['d']},
        {key: 'e', operator: 'In', values: ['x', 'y']},
        {key: 'f', operator: 'NotIn', values: ['z']},
        {key: 'g', operator: 'Exists'},
        {key: 'h', operator: 'DoesNotExist'},
      ],
    })
    assert.equal(formatLabelSelector(parseLabelSelector('a=b,e in (x,y),!h')), 'a=b,e in (x,y),!h')
    assert.throws(() => parseLabelSelector('a=b,a=c'), /contradicts a=b/)
    assert.throws(() => parseLabelSelector('bad key=x'), UsageError)
    assert.throws(() => parseLabelSelector(''), /is empty/)
  })

  it('tolerations, written like taints', () => {
    assert.deepEqual(parseTolerations('node-role.kubernetes.io/control-plane:NoSchedule,CriticalAddonsOnly=true:NoExecute,dedicated,*'), [
      {key: 'node-role.kubernetes.io/control-plane', operator: 'Exists', effect: 'NoSchedule'},
      {key: 'CriticalAddonsOnly', operator: 'Equal', value: 'true', effect: 'NoExecute'},
      {key: 'dedicated', operator: 'Exists'},
      {operator: 'Exists'},
    ])
  })

  it('windows', () => {
    assert.deepEqual(parseWindow('days=Mon,tue,start=19:00,end=21:30,tz=UTC'), {days: ['mon', 'tue'], startTime: '19:00', endTime: '21:30', timeZone: 'UTC'})
    assert.throws(() => parseWindow('start=19:00,end=21:00'), /no days/)
    assert.throws(() => parseWindow('days=mon,start=19:00'), /both start and end/)
  })

  it('images: a repository, never a tag or digest', () => {
    checkImage('registry.lan:5000/rancher/k3s-upgrade')
    assert.throws(() => checkImage('rancher/k3s-upgrade@sha256:abc'), /carries a tag or digest/)
  })
})

describe('version checks against the live nodes', () => {
  const node = (name: string, role: 'server' | 'agent', kubeletVersion: string): ClusterNode => ({
    name,
    role,
    kubeletVersion,
    ready: true,
    unschedulable: false,
    labels: {'kubernetes.io/hostname': name, ...(role === 'server' ? {'node-role.kubernetes.io/control-plane': 'true'} : {})},
  })
  const pair = (to: string) => {
    const built = buildPlans({distribution: 'k3s', target: {kind: 'version', version: parseVersion(to)}, agentConcurrency: 1, drain: defaultConfig().upgrade.drain})
    return {plans: [built.server, built.agent], options: {targetOf: () => parseVersion(to), exclusive: true}}
  }
  const check = (to: string, nodes: ClusterNode[]) => {
    const {plans, options} = pair(to)
    return checkPlansAgainstNodes(plans, nodes, options)
  }

  it('passes an upgrade by one minor and notes nodes already there', () => {
    const result = check('v1.31.5+k3s1', [node('s1', 'server', 'v1.30.8+k3s1'), node('a1', 'agent', 'v1.31.5+k3s1')])
    assert.deepEqual(result.selected, {'k3s-server': ['s1'], 'k3s-agent': ['a1']})
    assert.deepEqual(result.atTarget, ['a1'])
  })

  it('refuses a downgrade, an older +k3sN build and a skipped minor, all at once, with exit 3', () => {
    assert.throws(
      () => check('v1.31.5+k3s1', [node('s1', 'server', 'v1.31.5+k3s2'), node('a1', 'agent', 'v1.32.0+k3s1'), node('a2', 'agent', 'v1.29.9+k3s1')]),
      (error: PreflightError) => {
        assert.equal(error.exitCode, ExitCode.preflightRefused)
        assert.match(error.message, /s1 runs v1\.31\.5\+k3s2; v1\.31\.5\+k3s1 is an older build of the same release \(k3s release 2 → 1\)/)
        assert.match(error.message, /a1 runs v1\.32\.0\+k3s1; v1\.31\.5\+k3s1 would be a downgrade/)
        assert.match(error.message, /a2 runs v1\.29\.9\+k3s1; v1\.31\.5\+k3s1 skips the minor version v1\.30/)
        assert.match(error.hint ?? '', /--to v1\.30 first/)
        return true
      },
    )
  })

  it('refuses a node both plans select, and a version of the other distribution', () => {
    const both = {...node('x', 'server', 'v1.31.4+k3s1'), labels: {'kubernetes.io/hostname': 'x', 'node-role.kubernetes.io/control-plane': 'true'}}
    const {plans, options} = pair('v1.31.5+k3s1')
    plans[1].spec.nodeSelector = {matchExpressions: [{key: 'kubernetes.io/hostname', operator: 'Exists'}]}
    assert.throws(() => checkPlansAgainstNodes(plans, [both], options), /selected by k3s-server and k3s-agent/)
    assert.throws(() => check('v1.31.5+k3s1', [node('r', 'server', 'v1.31.3+rke2r1')]), (error: PreflightError) => {
      assert.match(error.message, /node r runs v1\.31\.3\+rke2r1 \(rke2\); plan k3s-server installs v1\.31\.5\+k3s1 \(k3s\)/)
      assert.match(error.hint ?? '', /--distribution rke2/)
      return true
    })
  })
})

describe('plan files', () => {
  it('accepts generated plans and refuses env, concurrency 0 and a prepare that would wait forever', async () => {
    const {yaml} = await generate(cases[0])
    assert.equal(parsePlanFile(yaml, 'plans.yaml').plans.length, 2)
    const broken = yaml.replace('concurrency: 1\n  version: v1.31.5+k3s1\n  serviceAccountName: system-upgrade\n  nodeSelector:\n    matchExpressions:\n      - key: node-role.kubernetes.io/control-plane\n        operator: DoesNotExist', 'concurrency: 0\n  version: v1.31.4+k3s1\n  serviceAccountName: system-upgrade\n  nodeSelector:\n    matchExpressions:\n      - key: node-role.kubernetes.io/control-plane\n        operator: DoesNotExist').replace('  upgrade:\n    image: rancher/k3s-upgrade\n---', '  upgrade:\n    image: rancher/k3s-upgrade\n    env: [{name: A, value: b}]\n---')
    assert.throws(() => parsePlanFile(broken, 'plans.yaml'), (error: UsageError) => {
      assert.match(error.message, /document 1: spec\.upgrade\.env is not a Plan field/)
      assert.match(error.message, /document 2: spec\.concurrency must be a whole number of at least 1, got 0/)
      return true
    })
    const mismatch = yaml.replace(/version: v1\.31\.5\+k3s1\n(?![\s\S]*version: v1\.31\.5\+k3s1)/, 'version: v1.31.6+k3s1\n')
    assert.throws(() => parsePlanFile(mismatch, 'plans.yaml'), /targets v1\.31\.6\+k3s1 but waits for k3s-server, which targets v1\.31\.5\+k3s1/)
  })
})

describe('the simulated API accepts every generated Plan (server-side apply, dryRun=All)', () => {
  let c: SucCluster
  before(async () => {
    c = await startSucCluster({servers: 1, agents: 1, controller: false})
    c.api.ensureNamespace('upgrades')
  })
  after(() => c.stop())

  it('answers each dry run with the object, stores nothing', async () => {
    for (const cs of cases) {
      const {server, agent} = await generate(cs)
      const applied = await serverSideApply(c.kube, [server, agent] as never, {dryRun: true})
      assert.deepEqual(applied.map((a) => a.action), ['created', 'created'], cs.name)
    }
    const dryRuns = c.api.audit.matching({resource: 'plans', verb: 'patch'})
    assert.equal(dryRuns.length, cases.length * 2)
    for (const entry of dryRuns) {
      assert.ok(entry.code === 200 || entry.code === 201, `${entry.name}: ${entry.code}`)
      assert.equal(entry.dryRun, true)
      assert.equal(entry.fieldManager, 'homelab')
      assert.match(entry.contentType ?? '', /application\/apply-patch\+yaml/)
    }
    assert.equal(c.api.store.list('plans.upgrade.cattle.io').length, 0)
  })

  it('and refuses a broken one (so the test above can fail)', async () => {
    const {server} = await generate(cases[0])
    const broken = {...server, spec: {...server.spec, concurrency: 'one' as unknown as number}}
    await assert.rejects(serverSideApply(c.kube, [broken] as never, {dryRun: true}), /refused Plan system-upgrade\/k3s-server: .*spec\.concurrency/)
  })
})
