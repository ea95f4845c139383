import assert from 'node:assert/strict'
import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, describe, test} from 'node:test'

import {
  ConfigProblemsError,
  findConfigFile,
  loadConfig,
  parseConfig,
  type ConfigSearchOptions,
} from '../src/config/index.js'
import {durationMs, formatDuration, parseDuration} from '../src/duration.js'
import {ConfigError, ExitCode, UsageError} from '../src/errors.js'

const MINIMAL = 'nodes:\n  - {name: server-1, host: 10.0.0.11, role: server}\n'
const HOME = '/home/ada'

const tmp = mkdtempSync(join(tmpdir(), 'homelab-config-'))
after(() => rmSync(tmp, {recursive: true, force: true}))

let dirCount = 0
function dir(): string {
  const d = join(tmp, `d${dirCount++}`)
  mkdirSync(d, {recursive: true})
  return d
}

function write(path: string, text = MINIMAL): string {
  mkdirSync(join(path, '..'), {recursive: true})
  writeFileSync(path, text)
  return path
}

/** Parses and returns the ConfigError, failing when the text is accepted. */
function problems(text: string, file = 'homelab.yaml'): ConfigProblemsError {
  try {
    parseConfig(text, file, {home: HOME})
  } catch (error) {
    assert.ok(error instanceof ConfigProblemsError, String(error))
    assert.ok(error instanceof ConfigError)
    assert.equal(error.exitCode, ExitCode.usage)
    return error
  }
  assert.fail(`accepted:\n${text}`)
}

describe('finding the cluster file', () => {
  const search = (over: Partial<ConfigSearchOptions> & {cwd: string; home: string}): ConfigSearchOptions => ({env: {}, ...over})

  test('--config wins over everything, relative to the cwd', () => {
    const cwd = dir()
    const home = dir()
    write(join(cwd, 'homelab.yaml'))
    write(join(cwd, 'other.yaml'))
    const env = {HOMELAB_CONFIG: join(cwd, 'homelab.yaml')}
    assert.equal(findConfigFile(search({explicit: 'other.yaml', env, cwd, home})), join(cwd, 'other.yaml'))
    assert.equal(findConfigFile(search({explicit: '~/x.yaml', env, cwd, home})), join(home, 'x.yaml'))
  })

  test('then HOMELAB_CONFIG, then ./homelab.yaml, ./homelab.yml, then XDG', () => {
    const cwd = dir()
    const home = dir()
    const envFile = write(join(dir(), 'lab.yaml'))
    const xdgDefault = write(join(home, '.config', 'homelab', 'homelab.yaml'))
    assert.equal(findConfigFile(search({cwd, home})), xdgDefault)

    const xdgHome = dir()
    const xdgSet = write(join(xdgHome, 'homelab', 'homelab.yml'))
    assert.equal(findConfigFile(search({cwd, home, env: {XDG_CONFIG_HOME: xdgHome}})), xdgSet)
    // A relative XDG_CONFIG_HOME is ignored, as the XDG spec says.
    assert.equal(findConfigFile(search({cwd, home, env: {XDG_CONFIG_HOME: 'rel'}})), xdgDefault)

    const yml = write(join(cwd, 'homelab.yml'))
    assert.equal(findConfigFile(search({cwd, home})), yml)
    const yaml = write(join(cwd, 'homelab.yaml'))
    assert.equal(findConfigFile(search({cwd, home})), yaml)

    assert.equal(findConfigFile(search({cwd, home, env: {HOMELAB_CONFIG: envFile}})), envFile)
  })

  test('nothing found: undefined, and loading says where it looked and how to create one', async () => {
    const cwd = dir()
    const home = dir()
    assert.equal(findConfigFile(search({cwd, home})), undefined)
    await assert.rejects(loadConfig(search({cwd, home})), (e: unknown) => {
      assert.ok(e instanceof ConfigError)
      assert.equal(e.message, `no cluster file found: looked for homelab.yaml or homelab.yml in ${cwd} and ${join(home, '.config', 'homelab')}`)
      assert.match(e.hint ?? '', new RegExp(`create ${join(cwd, 'homelab.yaml')} \\(minimal content: .*nodes:.*\\), or pass --config <file> or set HOMELAB_CONFIG`))
      return true
    })
  })

  test('a missing --config or HOMELAB_CONFIG file is an error, never a fallback', async () => {
    const cwd = dir()
    const home = dir()
    write(join(cwd, 'homelab.yaml'))
    await assert.rejects(loadConfig(search({explicit: 'nope.yaml', cwd, home})), (e: unknown) => {
      assert.ok(e instanceof ConfigError)
      assert.equal(e.message, `config file ${join(cwd, 'nope.yaml')} (from --config) does not exist`)
      assert.match(e.hint ?? '', /--config/)
      return true
    })
    await assert.rejects(loadConfig(search({env: {HOMELAB_CONFIG: join(cwd, 'gone.yaml')}, cwd, home})), (e: unknown) => {
      assert.ok(e instanceof ConfigError)
      assert.match(e.message, /gone\.yaml \(from HOMELAB_CONFIG\) does not exist/)
      assert.match(e.hint ?? '', /HOMELAB_CONFIG/)
      return true
    })
    await assert.rejects(loadConfig(search({explicit: cwd, cwd, home})), /is a directory/)
  })

  test('loads the file found, resolving paths against its directory and home', async () => {
    const cwd = dir()
    const home = dir()
    const file = write(
      join(cwd, 'homelab.yaml'),
      'kubernetes: {kubeconfig: ./kube/config}\nssh: {identityFile: ~/.ssh/lab}\n' + MINIMAL,
    )
    write(join(home, '.ssh', 'lab'), 'a private key\n')
    const {config, file: found} = await loadConfig(search({cwd, home}))
    assert.equal(found, file)
    assert.equal(config.kubernetes.kubeconfig, join(cwd, 'kube', 'config'))
    assert.equal(config.ssh.identityFile, join(home, '.ssh', 'lab'))
    assert.equal(config.ssh.knownHosts, join(home, '.ssh', 'known_hosts'))
  })
})

describe('defaults', () => {
  test('a minimal file gets every default from the schema', () => {
    const config = parseConfig(MINIMAL, '/lab/homelab.yaml', {home: HOME})
    assert.deepEqual(config, {
      distribution: 'k3s',
      kubernetes: {},
      ssh: {
        knownHosts: '/home/ada/.ssh/known_hosts',
        become: 'sudo',
        connectTimeout: 10_000,
        keepaliveInterval: 15_000,
        commandTimeout: 120_000,
      },
      nodes: [{name: 'server-1', host: '10.0.0.11', role: 'server', connection: 'ssh'}],
      discover: false,
      install: {
        binDir: '/usr/local/bin',
        dataDir: '/var/lib/rancher/k3s',
        configDir: '/etc/rancher/k3s',
        releaseUrl: 'https://github.com/k3s-io/k3s/releases/download',
        channelUrl: 'https://update.k3s.io/v1-release/channels',
        source: 'cli',
        service: 'auto',
        images: 'auto',
        uploadConcurrency: 2,
      },
      upgrade: {
        agentConcurrency: 1,
        drain: {
          ignoreDaemonsets: true,
          deleteEmptydirData: true,
          force: false,
          gracePeriod: -1,
          timeout: 300_000,
          disableEviction: false,
          skipWaitForDeleteTimeout: 0,
          podSelector: '',
        },
        backup: {
          velero: {
            enabled: true,
            namespace: 'velero',
            includedNamespaces: ['kube-system'],
            storageLocation: 'default',
            ttl: 720 * 3_600_000,
            timeout: 1_800_000,
          },
          etcdSnapshot: 'auto',
        },
        timeouts: {apiReady: 300_000, nodeReady: 600_000},
        healthGate: {enabled: true, timeout: 600_000},
      },
      hooks: {preRun: [], postRun: [], preNode: [], postNode: []},
      notify: [],
    })
  })

  test('rke2 gets its own install defaults; explicit values win', () => {
    const config = parseConfig(`distribution: rke2\ninstall: {binDir: /opt/rke2/bin/}\n${MINIMAL}`, 'homelab.yaml', {home: HOME})
    assert.equal(config.install.dataDir, '/var/lib/rancher/rke2')
    assert.equal(config.install.channelUrl, 'https://update.rke2.io/v1-release/channels')
    assert.equal(config.install.releaseUrl, 'https://github.com/rancher/rke2/releases/download')
    assert.equal(config.install.binDir, '/opt/rke2/bin')
  })

  test('a full file keeps what it says; per-node overrides stay per node', () => {
    const config = parseConfig(
      `
distribution: k3s
kubernetes: {kubeconfig: /etc/kube.yaml, context: homelab}
ssh:
  user: pi
  port: 2222
  become: none
  proxyJump: admin@bastion:22,jump2
  connectTimeout: 3s
  commandTimeout: 90
install:
  releaseUrl: http://mirror.lan/k3s/
  channelUrl: http://mirror.lan/channels
  source: node
  service: openrc
nodes:
  - name: server-1
    host: 10.0.0.11
    role: server
    ssh: {port: 2200, become: sudo, identityFile: keys/s1}
    install: {dataDir: /data/k3s}
  - name: agent-1.lan
    host: fe80::1
    role: agent
upgrade:
  agentConcurrency: 3
  drain: {force: true, gracePeriod: 30, timeout: 1h30m, podSelector: "app!=db"}
  backup:
    velero: {enabled: false}
    etcdSnapshot: never
  timeouts: {apiReady: 250ms}
`,
      '/lab/conf/homelab.yaml',
      {home: HOME},
    )
    assert.equal(config.ssh.user, 'pi')
    assert.equal(config.ssh.port, 2222)
    assert.equal(config.ssh.become, 'none')
    assert.equal(config.ssh.connectTimeout, 3_000)
    assert.equal(config.ssh.commandTimeout, 90_000)
    assert.equal(config.install.releaseUrl, 'http://mirror.lan/k3s')
    assert.equal(config.install.source, 'node')
    assert.deepEqual(config.nodes[0].ssh, {port: 2200, become: 'sudo', identityFile: '/lab/conf/keys/s1'})
    assert.deepEqual(config.nodes[0].install, {dataDir: '/data/k3s'})
    assert.equal(config.nodes[1].ssh, undefined)
    assert.equal(config.upgrade.agentConcurrency, 3)
    assert.equal(config.upgrade.drain.timeout, 5_400_000)
    assert.equal(config.upgrade.drain.ignoreDaemonsets, true)
    assert.equal(config.upgrade.backup.velero.enabled, false)
    assert.equal(config.upgrade.backup.velero.namespace, 'velero')
    assert.equal(config.upgrade.timeouts.apiReady, 250)
    assert.equal(config.upgrade.timeouts.nodeReady, 600_000)
  })

  test('discover: true needs neither nodes nor their host and role', () => {
    assert.deepEqual(parseConfig('discover: true\n', 'homelab.yaml', {home: HOME}).nodes, [])
    const config = parseConfig('discover: true\nnodes:\n  - {name: agent-1, ssh: {user: pi}}\n', 'homelab.yaml', {home: HOME})
    assert.deepEqual(config.nodes, [{name: 'agent-1', connection: 'ssh', ssh: {user: 'pi'}}])
  })

  test('an empty section (YAML null) means "not set"', () => {
    const config = parseConfig(`ssh:\nupgrade:\n  drain:\n${MINIMAL}`, 'homelab.yaml', {home: HOME})
    assert.equal(config.ssh.become, 'sudo')
    assert.equal(config.upgrade.drain.timeout, 300_000)
  })
})

describe('error messages', () => {
  test('an enum value: file, path, what is allowed, what was given, and the fix', () => {
    const e = problems('nodes:\n  - {name: a, host: h1, role: server}\n  - {name: b, host: h2, role: agent}\n  - name: c\n    host: h3\n    role: worker\n')
    assert.equal(e.message, 'homelab.yaml:6:11: nodes[2].role: must be "server" or "agent", got "worker"')
    assert.equal(e.hint, 'set nodes[2].role to server or agent')
    assert.equal(e.file, 'homelab.yaml')
    assert.equal(e.path, 'nodes[2].role')
    assert.deepEqual(e.problems[0], {
      file: 'homelab.yaml',
      path: 'nodes[2].role',
      line: 6,
      column: 11,
      problem: 'must be "server" or "agent", got "worker"',
      hint: 'set nodes[2].role to server or agent',
    })
  })

  test('an unknown key with a close match suggests it', () => {
    const e = problems(`upgrade:\n  concurency: 2\n${MINIMAL}`)
    assert.equal(e.message, 'homelab.yaml:2:3: upgrade.concurency: unknown key (did you mean `agentConcurrency`?)')
    assert.equal(e.hint, 'rename it to upgrade.agentConcurrency, or remove it')
  })

  test('a key spelt like SUC or snake_case finds kubectl\'s camelCase name', () => {
    assert.match(problems(`upgrade:\n  drain: {ignoreDaemonSets: true}\n${MINIMAL}`).message, /upgrade\.drain\.ignoreDaemonSets: unknown key \(did you mean `ignoreDaemonsets`\?\)/)
    assert.match(problems(`upgrade:\n  agent_concurrency: 2\n${MINIMAL}`).message, /did you mean `agentConcurrency`/)
  })

  test('an unknown key that belongs elsewhere says where', () => {
    const e = problems(`upgrade:\n  ignoreDaemonsets: true\n${MINIMAL}`)
    assert.equal(e.message, 'homelab.yaml:2:3: upgrade.ignoreDaemonsets: unknown key here; `ignoreDaemonsets` belongs under upgrade.drain')
    assert.equal(e.hint, 'move it under upgrade.drain')
  })

  test('an unknown key with no match lists the allowed keys', () => {
    const e = problems(`frobnicate: 1\n${MINIMAL}`)
    assert.equal(e.message, 'homelab.yaml:1:1: frobnicate: unknown key')
    assert.equal(e.hint, 'remove it; the keys allowed at the top level are: distribution, kubernetes, ssh, nodes, discover, install, upgrade, hooks, notify')
  })

  test('a wrong type, and a number in quotes', () => {
    let e = problems(`discover: yes please\n${MINIMAL}`)
    assert.equal(e.message, 'homelab.yaml:1:11: discover: must be true or false, got "yes please"')
    assert.equal(e.hint, 'set discover to true or false')
    e = problems(`ssh: {port: "22"}\n${MINIMAL}`)
    assert.equal(e.message, 'homelab.yaml:1:13: ssh.port: must be a number, got "22"')
    assert.equal(e.hint, 'write ssh.port without quotes: port: 22')
    e = problems(`upgrade: {agentConcurrency: 1.5}\n${MINIMAL}`)
    assert.match(e.message, /upgrade\.agentConcurrency: must be a whole number, got 1\.5/)
    e = problems('nodes: {name: a}\n')
    assert.equal(e.message, 'homelab.yaml:1:8: nodes: must be a list, got a mapping')
  })

  test('a missing required key', () => {
    const e = problems('nodes:\n  - {host: h1, role: server}\n')
    assert.equal(e.message, 'homelab.yaml:2:5: nodes[0].name: is required')
    assert.equal(e.hint, 'add name: … to nodes[0]')
  })

  test('numbers out of range', () => {
    let e = problems(`upgrade: {agentConcurrency: 0}\n${MINIMAL}`)
    assert.equal(e.message, 'homelab.yaml:1:29: upgrade.agentConcurrency: must be at least 1, got 0')
    assert.equal(e.hint, 'set upgrade.agentConcurrency to 1 or more')
    e = problems(`ssh: {port: 70000}\n${MINIMAL}`)
    assert.equal(e.message, 'homelab.yaml:1:13: ssh.port: must be at most 65535, got 70000')
    e = problems(`upgrade: {drain: {gracePeriod: -2}}\n${MINIMAL}`)
    assert.match(e.message, /upgrade\.drain\.gracePeriod: must be at least -1, got -2/)
  })

  test('a bad duration names the accepted forms', () => {
    const e = problems(`upgrade:\n  drain:\n    timeout: 5 minutes\n${MINIMAL}`)
    assert.equal(e.message, 'homelab.yaml:3:14: upgrade.drain.timeout: "5 minutes" is not a duration (use 30s, 5m, 1h30m, 250ms, or a whole number of seconds)')
    assert.equal(e.hint, 'set upgrade.drain.timeout to a duration such as 5m')
    assert.match(problems(`upgrade: {drain: {timeout: 0s}}\n${MINIMAL}`).message, /timeout: must be longer than 0/)
  })

  test('values checked for meaning: node names, hosts, remote paths, URLs, jump hosts', () => {
    const cases: Array<[string, RegExp, RegExp]> = [
      ['nodes: [{name: Server_1, host: h, role: server}]', /nodes\[0\]\.name: "Server_1" is not a valid Kubernetes node name/, /kubectl get nodes/],
      ['nodes: [{name: s, host: root@10.0.0.1, role: server}]', /nodes\[0\]\.host: "root@10\.0\.0\.1" contains a user name/, /ssh\.user/],
      ['nodes: [{name: s, host: "10.0.0.1:2222", role: server}]', /nodes\[0\]\.host: "10\.0\.0\.1:2222" contains a port/, /ssh\.port/],
      ['nodes: [{name: s, host: -oProxyCommand=x, role: server}]', /is not a host name or address/, /IP address/],
      [`install: {binDir: ~/bin}\n${MINIMAL}`, /install\.binDir: "~\/bin" is not an absolute path on the node/, /absolute path/],
      [`install: {channelUrl: "ftp://x"}\n${MINIMAL}`, /install\.channelUrl: "ftp:\/\/x" is not an http\(s\) URL/, /URL/],
      [`ssh: {proxyJump: "a b"}\n${MINIMAL}`, /ssh\.proxyJump: "a b" is not a jump host/, /ProxyJump/],
      [`ssh: {become: doas}\n${MINIMAL}`, /ssh\.become: must be "sudo" or "none", got "doas"/, /set ssh\.become to sudo or none/],
      [`upgrade: {backup: {velero: {includedNamespaces: [Kube]}}}\n${MINIMAL}`, /includedNamespaces\[0\]: "Kube" is not a namespace name/, /namespace/],
    ]
    for (const [text, message, hint] of cases) {
      const e = problems(text)
      assert.match(e.message, message, text)
      assert.match(e.hint ?? '', hint, text)
    }
  })

  test('cross-field: unique names, unique host+port, host and role unless discover, a server', () => {
    let e = problems('nodes:\n  - {name: a, host: h1, role: server}\n  - {name: a, host: h2, role: agent}\n')
    assert.equal(e.message, 'homelab.yaml:3:12: nodes[1].name: "a" is already the name of nodes[0]')
    e = problems('nodes:\n  - {name: a, host: h1, role: server}\n  - {name: b, host: H1, role: agent}\n')
    assert.equal(e.message, 'homelab.yaml:3:21: nodes[1].host: H1 is already the address of nodes[0] (a)')
    assert.equal(e.hint, 'give every node its own host (or its own ssh.port)')
    e = problems('ssh: {port: 22}\nnodes:\n  - {name: a, host: h1, role: server}\n  - {name: b, host: h1, role: agent, ssh: {port: 22}}\n')
    assert.match(e.message, /nodes\[1\]\.host: h1 port 22 is already the address of nodes\[0\] \(a\)/)
    // Same host, different ports: two simulated nodes on one loopback address.
    parseConfig('nodes:\n  - {name: a, host: 127.0.0.1, role: server, ssh: {port: 2201}}\n  - {name: b, host: 127.0.0.1, role: agent, ssh: {port: 2202}}\n', 'homelab.yaml', {home: HOME})

    e = problems('nodes:\n  - {name: a, role: server}\n  - {name: b, host: h2}\n')
    assert.equal(e.message, [
      'homelab.yaml:2:5: nodes[0].host: is missing (node a); it is required unless discover is true',
      'homelab.yaml:3:5: nodes[1].role: is missing (node b); it is required unless discover is true',
    ].join('\n'))
    assert.match(e.hint ?? '', /add host: <address or ~\/\.ssh\/config alias> to nodes\[0\], or set discover: true/)

    e = problems('nodes:\n  - {name: a, host: h1, role: agent}\n')
    assert.equal(e.message, 'homelab.yaml:2:3: nodes: no node has role: server')
    assert.match(e.hint ?? '', /role: server.*discover: true/)
    e = problems('distribution: k3s\n')
    assert.equal(e.message, 'homelab.yaml: nodes: lists no nodes')
    assert.match(e.hint ?? '', /discover: true/)
  })

  test('YAML syntax errors give file:line:col', () => {
    const e = problems('ssh:\n  user: pi\n port: 22\nnodes: []\n', '/etc/lab/homelab.yaml')
    assert.match(e.message, /^\/etc\/lab\/homelab\.yaml:3:\d+: YAML syntax error: /)
    assert.match(e.hint ?? '', /line 3/)
    assert.match(problems('ssh: {}\nssh: {}\n').message, /^homelab\.yaml:2:1: YAML syntax error: Map keys must be unique/)
  })

  test('an empty file and a top level that is not a mapping', () => {
    let e = problems('# nothing yet\n')
    assert.equal(e.message, 'homelab.yaml: the file is empty')
    assert.match(e.hint ?? '', /nodes:/)
    e = problems('- a\n- b\n')
    assert.equal(e.message, 'homelab.yaml:1:1: must be a mapping of settings at the top level, got a list')
  })

  test('several problems are all reported, in file order, first line standing alone', () => {
    const e = problems('upgrade:\n  agentConcurrency: 0\nssh:\n  becom: sudo\nnodes:\n  - {name: a, host: h1, role: worker}\n')
    assert.deepEqual(e.message.split('\n'), [
      'homelab.yaml:2:21: upgrade.agentConcurrency: must be at least 1, got 0',
      'homelab.yaml:4:3: ssh.becom: unknown key (did you mean `become`?)',
      'homelab.yaml:6:3: nodes: no node has role: server',
      'homelab.yaml:6:31: nodes[0].role: must be "server" or "agent", got "worker"',
    ])
    assert.equal(e.problems.length, 4)
    assert.equal(e.hint?.split('\n').length, 4)
  })
})

describe('durations', () => {
  test('parses the forms people write', () => {
    const cases: Array<[string | number, number]> = [
      ['30s', 30_000],
      ['5m', 300_000],
      ['1h30m', 5_400_000],
      ['250ms', 250],
      ['1.5s', 1_500],
      ['1h0m5s', 3_605_000],
      ['720h', 2_592_000_000],
      ['45', 45_000],
      [45, 45_000],
      ['0', 0],
      [' 2m ', 120_000],
    ]
    for (const [input, ms] of cases) assert.equal(parseDuration(input), ms, String(input))
  })

  test('refuses anything else, naming the value and the accepted forms', () => {
    for (const input of ['', '5x', 'm', '1h 30m', '-5s', '1.5', 'five minutes', '5M', '5s5', 1.5, -1]) {
      assert.equal(durationMs(input), undefined, String(input))
    }
    assert.throws(() => parseDuration('5x', '--timeout'), (e: unknown) => {
      assert.ok(e instanceof UsageError)
      assert.equal(e.message, '--timeout: "5x" is not a duration (use 30s, 5m, 1h30m, 250ms, or a whole number of seconds)')
      assert.equal(e.hint, 'set --timeout to a duration such as 5m')
      return true
    })
  })

  test('formats milliseconds back compactly and round-trips', () => {
    const cases: Array<[number, string]> = [
      [250, '250ms'],
      [30_000, '30s'],
      [90_000, '1m30s'],
      [5_400_000, '1h30m'],
      [2_592_000_000, '720h'],
      [1_500, '1.5s'],
      [3_605_000, '1h5s'],
    ]
    for (const [ms, text] of cases) {
      assert.equal(formatDuration(ms), text)
      assert.equal(parseDuration(text), ms)
    }
  })
})
