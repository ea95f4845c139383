import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {existsSync} from 'node:fs'
import {mkdtemp, readFile, readdir, rename, rm, writeFile} from 'node:fs/promises'
import {createServer, type Server} from 'node:http'
import type {AddressInfo} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'
import {fakeCommit, fakeGoVersion, fakeK3sBinary, packagedManifests, systemdUnit} from './k3s-fake.js'
import {imagesArchiveBytes, imagesArchiveSha256} from './airgap-images.js'
import {startReleaseServer} from './release-server.js'
import {
  agentImagesDir,
  createNodeFixture,
  currentBinaryVersion,
  execOnNode,
  installBinary,
  listSnapshots,
  readImagesLog,
  readServiceLog,
  readSudoLog,
  runningVersion,
  seedImagesArchive,
  serviceState,
  setControlUrl,
  setEmbeddedEtcd,
  setStartFailure,
  setSudoPasswordRequired,
  type NodeFixture,
  type NodeFixtureOptions,
} from './node-fixture.js'

interface ControlRequest {
  method: string
  url: string
  body: unknown
  at: number
  /** The x-homelab-sim-job-started-ms header: when the service manager took the start. */
  jobStartedMs?: number
}

/** A stand-in for the simulated API's control server: records what the nodes report. */
async function startControl(): Promise<{url: string; requests: ControlRequest[]; close(): Promise<void>}> {
  const requests: ControlRequest[] = []
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8')
      const job = req.headers['x-homelab-sim-job-started-ms']
      requests.push({method: req.method ?? '', url: req.url ?? '', body: text ? JSON.parse(text) : null, at: Date.now(), ...(job !== undefined ? {jobStartedMs: Number(job)} : {})})
      res.writeHead(204).end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const {port} = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

/** A loopback port nothing listens on. */
async function deadUrl(): Promise<string> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const {port} = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return `http://127.0.0.1:${port}`
}

const V1 = 'v1.31.4+k3s1'
const V2 = 'v1.31.5+k3s1'
const R1 = 'v1.31.3+rke2r1'
const R2 = 'v1.31.4+rke2r1'
/** What a node that pulls its images (the default) reports about them. */
const PULLED = {mode: 'pull', imported: [], ready: true}

describe('simulated node', () => {
  let root: string
  let control: Awaited<ReturnType<typeof startControl>>
  let counter = 0

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'homelab-node-fixture-'))
    control = await startControl()
  })
  after(async () => {
    await control.close()
    await rm(root, {recursive: true, force: true})
  })

  function node(overrides: Partial<NodeFixtureOptions> = {}): Promise<NodeFixture> {
    counter += 1
    return createNodeFixture({
      root,
      name: `node-${counter}`,
      role: 'server',
      version: V1,
      controlUrl: control.url,
      ...overrides,
    })
  }

  function reportsFor(name: string): ControlRequest[] {
    return control.requests.filter((r) => r.url.startsWith(`/nodes/${name}/`))
  }

  test('the node directory follows the contract', async () => {
    const n = await node({arch: 'arm64'})
    assert.equal(n.binaryPath, join(n.dir, 'bin', 'k3s'))
    const envText = await readFile(n.envFile, 'utf8')
    assert.match(envText, new RegExp(`^PATH=${n.fakebinDir}:`, 'm'))
    assert.match(envText, new RegExp(`^HOMELAB_SIM_NODE=${n.name}$`, 'm'))
    assert.match(envText, /^HOMELAB_SIM_ROLE=server$/m)
    assert.match(envText, new RegExp(`^HOMELAB_SIM_CONTROL=${control.url}$`, 'm'))
    assert.match(envText, new RegExp(`^HOMELAB_SIM_ROOT=${n.dir}$`, 'm'))
    const bytes = await readFile(n.binaryPath)
    assert.deepEqual(bytes, fakeK3sBinary({version: V1, arch: 'arm64'}))
    assert.equal(await serviceState(n), 'active')
    assert.equal(await runningVersion(n), V1)
  })

  test('fake k3s answers --version like the real one, and binaries differ per version and arch', async () => {
    const n = await node()
    const r = await execOnNode(n, [n.binaryPath, '--version'])
    assert.equal(r.exitCode, 0)
    assert.equal(r.stdout, `k3s version ${V1} (${fakeCommit(V1)})\ngo version ${fakeGoVersion(V1)}\n`)
    assert.match(r.stdout, /^k3s version v1\.31\.4\+k3s1 \([0-9a-f]{8}\)\ngo version go1\.22\.\d+\n$/)
    assert.equal((await execOnNode(n, [n.binaryPath, '-v'])).stdout, r.stdout)
    assert.equal(await currentBinaryVersion(n), V1)

    const hashes = new Set(
      [V1, V2, 'v1.32.0+k3s1'].flatMap((version) =>
        (['amd64', 'arm64', 'arm'] as const).map((arch) =>
          createHash('sha256').update(fakeK3sBinary({version, arch})).digest('hex'),
        ),
      ),
    )
    assert.equal(hashes.size, 9)
    assert.notEqual(fakeCommit(V1), fakeCommit(V2))
    assert.throws(() => fakeK3sBinary({version: '1.31', arch: 'amd64'}), /not a k3s version/)
  })

  test('a binary for another architecture does not run on the node', async () => {
    const n = await node({arch: 'amd64'})
    await installBinary(n, {version: V1, arch: 'arm64'})
    const r = await execOnNode(n, [n.binaryPath, '--version'])
    assert.equal(r.exitCode, 126)
    assert.match(r.stderr, /Exec format error/)
    await assert.rejects(currentBinaryVersion(n), /--version failed \(exit 126\)/)
  })

  test('k3s server reports to the control server with version, arch and role', async () => {
    const n = await node({arch: 'arm', unameMachine: 'armv7l'})
    const r = await execOnNode(n, [n.binaryPath, 'server', '--write-kubeconfig-mode', '644'])
    assert.equal(r.exitCode, 0, r.stderr)
    const reports = reportsFor(n.name)
    assert.equal(reports.length, 1)
    assert.equal(reports[0]!.jobStartedMs, undefined, 'run by hand, not by the service manager')
    assert.equal(reports[0]!.method, 'POST')
    assert.equal(reports[0]!.url, `/nodes/${n.name}/k3s-started`)
    assert.deepEqual(reports[0]!.body, {version: V1, arch: 'arm', role: 'server', images: PULLED})
    assert.equal(await runningVersion(n), V1)
    const log = await readServiceLog(n)
    assert.deepEqual(log.at(-1)!.args, ['started', V1, 'arm', 'server'])
    assert.equal(log.at(-1)!.source, 'k3s')
  })

  test('k3s server fails with a message when the control server is unreachable', async () => {
    const n = await node()
    await setControlUrl(n, await deadUrl())
    const r = await execOnNode(n, [n.binaryPath, 'server'])
    assert.notEqual(r.exitCode, 0)
    assert.match(r.stderr, /level=fatal msg="cannot report to the simulation control server .*k3s-started/)
  })

  test('etcd-snapshot save / ls / delete on a server with embedded etcd', async () => {
    const n = await node()
    const before = Math.floor(Date.now() / 1000)
    const save = await execOnNode(n, ['sudo', '-n', n.binaryPath, 'etcd-snapshot', 'save', '--name', 'pre-upgrade-v1.31.5'])
    assert.equal(save.exitCode, 0, save.stderr)
    const snaps = await listSnapshots(n)
    assert.equal(snaps.length, 1)
    const m = new RegExp(`^pre-upgrade-v1\\.31\\.5-${n.name}-(\\d+)$`).exec(snaps[0]!)
    assert.ok(m, snaps[0])
    assert.ok(Number(m[1]) >= before && Number(m[1]) <= before + 5)
    assert.match(save.stderr, new RegExp(`level=info msg="Snapshot ${snaps[0]} saved\\."`))

    const ls = await execOnNode(n, ['sudo', '-n', n.binaryPath, 'etcd-snapshot', 'ls', '--data-dir', n.dataDir])
    assert.equal(ls.exitCode, 0, ls.stderr)
    const lines = ls.stdout.trimEnd().split('\n')
    assert.match(lines[0]!, /^Name +Location +Size +Created$/)
    const file = join(n.dataDir, 'server', 'db', 'snapshots', snaps[0]!)
    assert.match(lines[1]!, new RegExp(`^${snaps[0]} +file://${file} +\\d+ +\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ$`))
    assert.equal(lines.length, 2)

    const other = join(root, `${n.name}-elsewhere`)
    const custom = await execOnNode(n, ['sudo', '-n', n.binaryPath, 'etcd-snapshot', 'save', '--etcd-snapshot-dir', other])
    assert.equal(custom.exitCode, 0, custom.stderr)
    assert.match(custom.stderr, new RegExp(`Snapshot on-demand-${n.name}-\\d+ saved`))

    const del = await execOnNode(n, ['sudo', '-n', n.binaryPath, 'etcd-snapshot', 'delete', snaps[0]!, 'no-such'])
    assert.equal(del.exitCode, 0)
    assert.match(del.stderr, /Snapshot no-such not found/)
    assert.deepEqual(await listSnapshots(n), [])
    const kinds = (await readServiceLog(n)).filter((e) => e.source === 'k3s').map((e) => e.args[0])
    assert.deepEqual(kinds, ['snapshot-saved', 'snapshot-saved', 'snapshot-deleted'])

    const bad = await execOnNode(n, [n.binaryPath, 'etcd-snapshot', 'save', '--nmae', 'x'])
    assert.equal(bad.exitCode, 1)
    assert.match(bad.stderr, /flag provided but not defined: -nmae/)
  })

  test('etcd-snapshot is refused on an agent, on SQLite, and with the service down', async () => {
    const agent = await node({role: 'agent'})
    const a = await execOnNode(agent, [agent.binaryPath, 'etcd-snapshot', 'save'])
    assert.equal(a.exitCode, 1)
    assert.match(a.stderr, /level=fatal msg="open .*\/data\/server\/token: no such file or directory"/)

    const sqlite = await node({embeddedEtcd: false})
    const s = await execOnNode(sqlite, ['sudo', '-n', sqlite.binaryPath, 'etcd-snapshot', 'save'])
    assert.equal(s.exitCode, 1)
    assert.match(s.stderr, /etcd datastore disabled/)
    await setEmbeddedEtcd(sqlite, true)
    assert.equal((await execOnNode(sqlite, ['sudo', '-n', sqlite.binaryPath, 'etcd-snapshot', 'save'])).exitCode, 0)
    await setEmbeddedEtcd(sqlite, false)
    assert.equal((await execOnNode(sqlite, ['sudo', '-n', sqlite.binaryPath, 'etcd-snapshot', 'ls'])).exitCode, 1)

    const down = await node()
    assert.equal((await execOnNode(down, ['sudo', '-n', 'systemctl', 'stop', 'k3s'])).exitCode, 0)
    const d = await execOnNode(down, ['sudo', '-n', down.binaryPath, 'etcd-snapshot', 'save'])
    assert.equal(d.exitCode, 1)
    assert.match(d.stderr, /connection refused/)
  })

  test('systemctl restart runs the binary now in place: a swap by rename takes effect', async () => {
    const n = await node()
    const before = Date.now()
    const r1 = await execOnNode(n, ['sudo', '-n', 'systemctl', 'restart', 'k3s'])
    assert.equal(r1.exitCode, 0, r1.stderr)
    // The start report says when the service manager took the job: before its stop report and
    // the binary's start-up, which the simulated API can leave out of a restart's time.
    const [stopReport, startReport] = reportsFor(n.name)
    assert.equal(stopReport?.jobStartedMs, undefined)
    const job = startReport?.jobStartedMs ?? NaN
    assert.ok(job >= before - 1000 && job <= stopReport!.at, `job ${job}, asked at ${before}, stop reported at ${stopReport!.at}`)
    assert.deepEqual(
      reportsFor(n.name).map((r) => [r.url, r.body]),
      [
        [`/nodes/${n.name}/k3s-stopped`, {}],
        [`/nodes/${n.name}/k3s-started`, {version: V1, arch: 'amd64', role: 'server', images: PULLED}],
      ],
    )

    // What the product does: new binary beside the old one, old kept, swap by rename.
    await writeFile(`${n.binaryPath}.new`, fakeK3sBinary({version: V2, arch: 'amd64'}), {mode: 0o755})
    await rename(n.binaryPath, `${n.binaryPath}.prev`)
    await rename(`${n.binaryPath}.new`, n.binaryPath)
    const r2 = await execOnNode(n, ['sudo', '-n', 'systemctl', 'restart', 'k3s.service'])
    assert.equal(r2.exitCode, 0, r2.stderr)
    assert.deepEqual(reportsFor(n.name).at(-1)!.body, {version: V2, arch: 'amd64', role: 'server', images: PULLED})
    assert.equal(await currentBinaryVersion(n), V2)
    assert.equal(await runningVersion(n), V2)

    const log = await readServiceLog(n)
    const calls = log.filter((e) => e.source === 'systemctl').map((e) => e.args)
    assert.deepEqual(calls, [['restart', 'k3s'], ['restart', 'k3s.service']])
    const sequence = log.map((e) => `${e.source} ${e.args.slice(0, 2).join(' ')}`)
    assert.deepEqual(sequence, [
      'systemctl restart k3s',
      'service stopped k3s',
      `k3s started ${V1}`,
      'service started k3s',
      'systemctl restart k3s.service',
      'service stopped k3s',
      `k3s started ${V2}`,
      'service started k3s',
    ])
    for (let i = 1; i < log.length; i++) assert.ok(log[i]!.time >= log[i - 1]!.time)
    assert.deepEqual((await readSudoLog(n)).map((e) => e.command), [
      ['systemctl', 'restart', 'k3s'],
      ['systemctl', 'restart', 'k3s.service'],
    ])
  })

  test('systemctl is-active / stop / show / status / unknown units, like systemd', async () => {
    const n = await node()
    let r = await execOnNode(n, ['systemctl', 'is-active', 'k3s'])
    assert.deepEqual([r.exitCode, r.stdout], [0, 'active\n'])
    r = await execOnNode(n, ['systemctl', 'show', '-p', 'ActiveState,SubState', 'k3s'])
    assert.equal(r.stdout, 'ActiveState=active\nSubState=running\n')
    r = await execOnNode(n, ['systemctl', 'show', '--property=LoadState', '--value', 'k3s'])
    assert.equal(r.stdout, 'loaded\n')
    r = await execOnNode(n, ['systemctl', '--version'])
    assert.match(r.stdout, /^systemd 252 /)

    r = await execOnNode(n, ['sudo', '-n', 'systemctl', 'stop', 'k3s'])
    assert.equal(r.exitCode, 0)
    assert.equal(reportsFor(n.name).at(-1)!.url, `/nodes/${n.name}/k3s-stopped`)
    r = await execOnNode(n, ['systemctl', 'is-active', 'k3s'])
    assert.deepEqual([r.exitCode, r.stdout], [3, 'inactive\n'])
    r = await execOnNode(n, ['systemctl', 'status', 'k3s'])
    assert.equal(r.exitCode, 3)
    assert.match(r.stdout, /Active: inactive \(dead\)/)
    assert.equal(await runningVersion(n), null)

    r = await execOnNode(n, ['sudo', '-n', 'systemctl', 'start', 'k3s'])
    assert.equal(r.exitCode, 0, r.stderr)
    assert.equal(await serviceState(n), 'active')

    r = await execOnNode(n, ['systemctl', 'restart', 'k3s-agent'])
    assert.equal(r.exitCode, 5)
    assert.equal(r.stderr, 'Failed to restart k3s-agent.service: Unit k3s-agent.service not found.\n')
    r = await execOnNode(n, ['systemctl', 'status', 'nope'])
    assert.equal(r.exitCode, 4)
    r = await execOnNode(n, ['systemctl', 'frobnicate', 'k3s'])
    assert.equal(r.exitCode, 1)
    const noOpenrc = await execOnNode(n, ['/bin/sh', '-c', 'command -v rc-service'])
    assert.notEqual(noOpenrc.exitCode, 0, 'a systemd node has no rc-service')
    assert.equal(noOpenrc.stdout, '')
  })

  test('changing the service or reading the server token needs root: sudo, or a root login', async () => {
    const n = await node()
    const restart = await execOnNode(n, ['systemctl', 'restart', 'k3s'])
    assert.equal(restart.exitCode, 1)
    assert.match(restart.stderr, /^Failed to restart k3s\.service: Interactive authentication required\./)
    assert.equal((await execOnNode(n, ['systemctl', 'daemon-reload'])).exitCode, 1)
    assert.equal((await execOnNode(n, ['systemctl', 'is-active', 'k3s'])).exitCode, 0, 'reading state needs no root')
    const save = await execOnNode(n, [n.binaryPath, 'etcd-snapshot', 'save'])
    assert.equal(save.exitCode, 1)
    assert.match(save.stderr, /server\/token: permission denied/)
    assert.equal(reportsFor(n.name).length, 0)
    assert.deepEqual(await listSnapshots(n), [])
    assert.deepEqual((await readServiceLog(n)).filter((e) => e.source === 'service').map((e) => e.args), [
      ['denied', 'k3s'],
      ['denied', 'k3s'],
    ])

    const openrc = await node({serviceManager: 'openrc'})
    const rc = await execOnNode(openrc, ['rc-service', 'k3s', 'restart'])
    assert.equal(rc.exitCode, 1)
    assert.match(rc.stderr, /root access required/)

    const rootLogin = await node({loginAsRoot: true})
    assert.equal(rootLogin.env.HOMELAB_SIM_PRIVILEGED, '1')
    assert.equal((await execOnNode(rootLogin, ['systemctl', 'restart', 'k3s'])).exitCode, 0)
    assert.equal((await execOnNode(rootLogin, [rootLogin.binaryPath, 'etcd-snapshot', 'save'])).exitCode, 0)
    assert.deepEqual(await readSudoLog(rootLogin), [])
  })

  test('a failing start leaves the unit failed and systemctl says so', async () => {
    const n = await node()
    await setStartFailure(n, 'starting kubernetes: preparing server: bootstrap data already found and encrypted with different token')
    const r = await execOnNode(n, ['sudo', '-n', 'systemctl', 'restart', 'k3s'])
    assert.equal(r.exitCode, 1)
    assert.match(r.stderr, /^Job for k3s\.service failed because the control process exited with error code\./)
    assert.equal(await serviceState(n), 'failed')
    const shown = await execOnNode(n, ['systemctl', 'is-active', 'k3s'])
    assert.deepEqual([shown.exitCode, shown.stdout], [3, 'failed\n'])
    assert.match(await readFile(join(n.stateDir, 'k3s.log'), 'utf8'), /level=fatal msg="starting kubernetes: preparing server/)
    await setStartFailure(n, null)
    assert.equal((await execOnNode(n, ['sudo', '-n', 'systemctl', 'start', 'k3s'])).exitCode, 0)
    assert.equal(await serviceState(n), 'active')
  })

  test('agents run k3s-agent with `k3s agent`', async () => {
    const n = await node({role: 'agent', arch: 'arm64'})
    assert.equal(n.serviceName, 'k3s-agent')
    const r = await execOnNode(n, ['sudo', '-n', 'systemctl', 'restart', 'k3s-agent'])
    assert.equal(r.exitCode, 0, r.stderr)
    assert.deepEqual(reportsFor(n.name).at(-1)!.body, {version: V1, arch: 'arm64', role: 'agent', images: PULLED})
    assert.equal((await execOnNode(n, ['systemctl', 'restart', 'k3s'])).exitCode, 5)
    const u = await execOnNode(n, ['uname', '-m'])
    assert.equal(u.stdout, 'aarch64\n')
    const sm = await execOnNode(n, ['uname', '-sm'])
    assert.equal(sm.stdout, `${(await execOnNode(n, ['/bin/sh', '-c', 'exec "$(command -v -p uname)" -s'])).stdout.trim()} aarch64\n`)
  })

  test('OpenRC node: rc-service restarts k3s, systemctl is not systemd, detection by command', async () => {
    const n = await node({serviceManager: 'openrc'})
    const detect = await execOnNode(n, [
      '/bin/sh',
      '-c',
      'if command -v rc-service >/dev/null 2>&1; then echo openrc; elif systemctl --version >/dev/null 2>&1; then echo systemd; fi',
    ])
    assert.equal(detect.stdout, 'openrc\n')
    const sysd = await node()
    const detect2 = await execOnNode(sysd, [
      '/bin/sh',
      '-c',
      'if command -v rc-service >/dev/null 2>&1; then echo openrc; elif systemctl --version >/dev/null 2>&1; then echo systemd; fi',
    ])
    assert.equal(detect2.stdout, 'systemd\n')

    const notSystemd = await execOnNode(n, ['systemctl', 'restart', 'k3s'])
    assert.equal(notSystemd.exitCode, 1)
    assert.match(notSystemd.stderr, /has not been booted with systemd/)
    assert.equal(reportsFor(n.name).length, 0)

    await installBinary(n, {version: V2})
    const r = await execOnNode(n, ['sudo', 'rc-service', 'k3s', 'restart'])
    assert.equal(r.exitCode, 0, r.stderr)
    assert.equal(r.stdout, ' * Stopping k3s ... [ ok ]\n * Starting k3s ... [ ok ]\n')
    assert.deepEqual(
      reportsFor(n.name).map((x) => x.url.split('/').at(-1)),
      ['k3s-stopped', 'k3s-started'],
    )
    assert.deepEqual(reportsFor(n.name).at(-1)!.body, {version: V2, arch: 'amd64', role: 'server', images: PULLED})
    let s = await execOnNode(n, ['rc-service', 'k3s', 'status'])
    assert.deepEqual([s.exitCode, s.stdout], [0, ' * status: started\n'])
    assert.equal((await execOnNode(n, ['sudo', '-n', 'rc-service', 'k3s', 'stop'])).exitCode, 0)
    s = await execOnNode(n, ['rc-service', 'k3s', 'status'])
    assert.deepEqual([s.exitCode, s.stdout], [3, ' * status: stopped\n'])
    assert.equal((await execOnNode(n, ['rc-service', '--exists', 'k3s'])).exitCode, 0)
    const unknown = await execOnNode(n, ['rc-service', 'k3s-agent', 'restart'])
    assert.equal(unknown.exitCode, 1)
    assert.match(unknown.stderr, /service 'k3s-agent' does not exist/)
    assert.match((await execOnNode(n, ['rc-status'])).stdout, /k3s +\[ {2}stopped {2}\]/)
    const calls = (await readServiceLog(n)).filter((e) => e.source === 'rc-service').map((e) => e.args)
    assert.deepEqual(calls[0], ['k3s', 'restart'])
  })

  test('sudo runs the command as is and journals argv; odd arguments survive', async () => {
    const n = await node()
    const odd = ['a b', "it's", '$HOME', '*', '', 'line1\nline2', '"q"', '\\', ';rm -rf /;', '--']
    const r = await execOnNode(n, ['sudo', '-n', '-E', '--', 'sh', '-c', 'for a in "$@"; do printf "[%s]" "$a"; done', 'sh', ...odd])
    assert.equal(r.exitCode, 0, r.stderr)
    assert.equal(r.stdout, odd.map((a) => `[${a}]`).join(''))
    const log = await readSudoLog(n)
    assert.equal(log.length, 1)
    assert.deepEqual(log[0]!.argv, ['-n', '-E', '--', 'sh', '-c', 'for a in "$@"; do printf "[%s]" "$a"; done', 'sh', ...odd])
    assert.deepEqual(log[0]!.command, ['sh', '-c', 'for a in "$@"; do printf "[%s]" "$a"; done', 'sh', ...odd])
    assert.ok(Math.abs(log[0]!.time.getTime() - Date.now()) < 10_000)

    const plain = await execOnNode(n, ['sudo', 'true'])
    assert.equal(plain.exitCode, 0)
    assert.deepEqual((await readSudoLog(n)).at(-1)!.command, ['true'])
    const missing = await execOnNode(n, ['sudo', '-n', 'no-such-command-here'])
    assert.equal(missing.exitCode, 1)
    assert.match(missing.stderr, /sudo: no-such-command-here: command not found/)
    const badOption = await execOnNode(n, ['sudo', '-Z', 'true'])
    assert.equal(badOption.exitCode, 1)

    // Odd arguments reach the service journal intact too.
    await execOnNode(n, ['systemctl', 'show', '-p', 'Id', "k3s'; echo pwned"])
    const last = (await readServiceLog(n)).filter((e) => e.source === 'systemctl').at(-1)!
    assert.deepEqual(last.args, ['show', '-p', 'Id', "k3s'; echo pwned"])

    await setSudoPasswordRequired(n, true)
    const refused = await execOnNode(n, ['sudo', '-n', 'true'])
    assert.deepEqual([refused.exitCode, refused.stderr], [1, 'sudo: a password is required\n'])
    await setSudoPasswordRequired(n, false)
    assert.equal((await execOnNode(n, ['sudo', '-n', 'true'])).exitCode, 0)
  })

  test("a node under a path with spaces and quotes works end to end", async () => {
    const n = await node({root: join(root, `it's a "dir" $HOME`)})
    const r = await execOnNode(n, ['sudo', '-n', 'systemctl', 'restart', 'k3s'])
    assert.equal(r.exitCode, 0, r.stderr)
    assert.deepEqual(reportsFor(n.name).at(-1)!.body, {version: V1, arch: 'amd64', role: 'server', images: PULLED})
    assert.equal(await currentBinaryVersion(n), V1)
    const save = await execOnNode(n, ['sudo', '-n', n.binaryPath, 'etcd-snapshot', 'save'])
    assert.equal(save.exitCode, 0, save.stderr)
    assert.equal((await listSnapshots(n)).length, 1)
  })

  test('the service runs with the env file only, not the caller environment', async () => {
    const n = await node()
    const r = await execOnNode(n, ['/bin/sh', '-c', 'HOMELAB_SIM_NODE=impostor NODE_OPTIONS=--no-such-flag sudo -n systemctl restart k3s'])
    assert.equal(r.exitCode, 0, r.stderr)
    assert.equal(reportsFor('impostor').length, 0)
    assert.deepEqual(reportsFor(n.name).at(-1)!.body, {version: V1, arch: 'amd64', role: 'server', images: PULLED})
  })

  // ---- rke2 nodes, manifests, split roles, package-owned binaries

  test('fake rke2 answers --version as rke2 does: full commit, boringcrypto Go', async () => {
    const n = await node({distribution: 'rke2', version: R1})
    assert.equal(n.binaryPath, join(n.dir, 'bin', 'rke2'))
    assert.equal(n.serviceName, 'rke2-server')
    const r = await execOnNode(n, [n.binaryPath, '--version'])
    assert.equal(r.exitCode, 0, r.stderr)
    assert.match(r.stdout, /^rke2 version v1\.31\.3\+rke2r1 \([0-9a-f]{40}\)\ngo version go1\.22\.\d+ X:boringcrypto\n$/)
    assert.equal(r.stdout, `rke2 version ${R1} (${fakeCommit(R1)})\ngo version ${fakeGoVersion(R1)}\n`)
    assert.equal(await currentBinaryVersion(n), R1)
    assert.notEqual(fakeCommit(R1), fakeCommit(R2))
    assert.deepEqual(await readFile(n.binaryPath), fakeK3sBinary({version: R1, arch: 'amd64'}))
    assert.throws(() => fakeK3sBinary({version: R1, arch: 'arm'}), /no rke2 build for architecture "arm"/)
    await assert.rejects(node({distribution: 'rke2', version: V1}), /not a rke2 version/)
  })

  test('rke2 data dir: token, etcd, snapshots, packaged manifests and the .skip files asked for', async () => {
    const n = await node({distribution: 'rke2', version: R1, skipManifests: ['rke2-ingress-nginx.yaml']})
    const server = join(n.dataDir, 'server')
    assert.equal(n.manifestsDir, join(server, 'manifests'))
    assert.match(await readFile(join(server, 'token'), 'utf8'), /^K10[0-9a-f]{64}::server:[0-9a-f]{32}\n$/)
    assert.ok(existsSync(join(server, 'db', 'etcd', 'member')))
    assert.deepEqual(await readdir(join(server, 'db', 'snapshots')), [])
    const manifests = (await readdir(n.manifestsDir)).sort()
    for (const m of ['rke2-canal.yaml', 'rke2-coredns.yaml', 'rke2-ingress-nginx.yaml', 'rke2-ingress-nginx.yaml.skip', 'rke2-metrics-server.yaml']) {
      assert.ok(manifests.includes(m), `${m} in ${manifests.join(' ')}`)
    }
    assert.deepEqual(manifests.filter((m) => m.endsWith('.skip')), ['rke2-ingress-nginx.yaml.skip'])
    assert.match(await readFile(join(n.manifestsDir, 'rke2-coredns.yaml'), 'utf8'), /kind: HelmChart/)

    // Every start extracts the manifests of the binary now in place, except the skipped one.
    await installBinary(n, {version: R2})
    const r = await execOnNode(n, ['sudo', '-n', 'systemctl', 'restart', 'rke2-server'])
    assert.equal(r.exitCode, 0, r.stderr)
    assert.deepEqual(reportsFor(n.name).at(-1)!.body, {version: R2, arch: 'amd64', role: 'server', images: PULLED})
    assert.equal(await readFile(join(n.manifestsDir, 'rke2-coredns.yaml'), 'utf8'), packagedManifests(R2)['rke2-coredns.yaml'])
    assert.equal(await readFile(join(n.manifestsDir, 'rke2-ingress-nginx.yaml'), 'utf8'), packagedManifests(R1)['rke2-ingress-nginx.yaml'])
    assert.equal((await readServiceLog(n)).filter((e) => e.source === 'rke2').at(-1)!.args[0], 'started')

    const agent = await node({distribution: 'rke2', version: R1, role: 'agent'})
    assert.ok(existsSync(join(agent.dataDir, 'agent')))
    assert.equal(existsSync(agent.manifestsDir), false)
    await assert.rejects(node({role: 'agent', skipManifests: ['traefik.yaml']}), /agents have no manifests/)
    await assert.rejects(node({skipManifests: ['../token']}), /not a manifest path/)
  })

  test('k3s servers have their packaged manifests too (metrics-server/ a directory); traefik.yaml.skip', async () => {
    const n = await node({skipManifests: ['traefik.yaml', 'metrics-server/metrics-server-deployment.yaml']})
    const top = (await readdir(n.manifestsDir)).sort()
    for (const m of ['coredns.yaml', 'local-storage.yaml', 'metrics-server', 'traefik.yaml', 'traefik.yaml.skip']) assert.ok(top.includes(m), m)
    assert.ok((await readdir(join(n.manifestsDir, 'metrics-server'))).includes('metrics-server-deployment.yaml.skip'))
    await installBinary(n, {version: V2})
    assert.equal((await execOnNode(n, ['sudo', '-n', 'systemctl', 'restart', 'k3s'])).exitCode, 0)
    assert.equal(await readFile(join(n.manifestsDir, 'coredns.yaml'), 'utf8'), packagedManifests(V2)['coredns.yaml'])
    assert.equal(await readFile(join(n.manifestsDir, 'traefik.yaml'), 'utf8'), packagedManifests(V1)['traefik.yaml'])
  })

  test('rke2 etcd-snapshot save --name (with --data-dir), ls, and its refusals', async () => {
    const n = await node({distribution: 'rke2', version: R1})
    const before = Math.floor(Date.now() / 1000)
    const save = await execOnNode(n, ['sudo', '-n', n.binaryPath, 'etcd-snapshot', 'save', '--data-dir', n.dataDir, '--name', 'pre-upgrade'])
    assert.equal(save.exitCode, 0, save.stderr)
    const snaps = await listSnapshots(n)
    assert.equal(snaps.length, 1)
    const m = new RegExp(`^pre-upgrade-${n.name}-(\\d+)$`).exec(snaps[0]!)
    assert.ok(m, snaps[0])
    assert.ok(Number(m[1]) >= before && Number(m[1]) <= before + 5)
    assert.match(save.stderr, new RegExp(`^time="[^"]+" level=info msg="Snapshot ${snaps[0]} saved\\."\n$`))
    const plain = await execOnNode(n, ['sudo', '-n', n.binaryPath, 'etcd-snapshot', 'save', '--name', 'again'])
    assert.equal(plain.exitCode, 0, plain.stderr)
    const ls = await execOnNode(n, ['sudo', '-n', n.binaryPath, 'etcd-snapshot', 'ls'])
    assert.equal(ls.exitCode, 0, ls.stderr)
    assert.match(ls.stdout, /^Name +Location +Size +Created\n/)
    assert.equal(ls.stdout.trimEnd().split('\n').length, 3)
    assert.deepEqual((await readServiceLog(n)).filter((e) => e.source === 'rke2').map((e) => e.args[0]), ['snapshot-saved', 'snapshot-saved'])

    const agent = await node({distribution: 'rke2', version: R1, role: 'agent'})
    assert.equal(agent.serviceName, 'rke2-agent')
    const a = await execOnNode(agent, ['sudo', '-n', agent.binaryPath, 'etcd-snapshot', 'save'])
    assert.equal(a.exitCode, 1)
    assert.match(a.stderr, /server\/token: no such file or directory/)
    assert.equal((await execOnNode(n, ['sudo', '-n', 'systemctl', 'stop', 'rke2-server'])).exitCode, 0)
    const down = await execOnNode(n, ['sudo', '-n', n.binaryPath, 'etcd-snapshot', 'save'])
    assert.equal(down.exitCode, 1)
    assert.match(down.stderr, /Post \\"https:\/\/127\.0\.0\.1:9345\/db\/snapshot\\": dial tcp 127\.0\.0\.1:9345: connect: connection refused/)
  })

  test('rke2 server --cluster-reset --cluster-reset-restore-path is journalled; agents run `rke2 agent`', async () => {
    const n = await node({distribution: 'rke2', version: R1})
    assert.equal((await execOnNode(n, ['sudo', '-n', n.binaryPath, 'etcd-snapshot', 'save', '--name', 'x'])).exitCode, 0)
    const file = join(n.dataDir, 'server', 'db', 'snapshots', (await listSnapshots(n))[0]!)
    const r = await execOnNode(n, ['sudo', '-n', n.binaryPath, 'server', '--cluster-reset', `--cluster-reset-restore-path=${file}`])
    assert.equal(r.exitCode, 0, r.stderr)
    assert.match(r.stderr, /Managed etcd cluster membership has been reset, restart without --cluster-reset flag now/)
    assert.deepEqual((await readServiceLog(n)).at(-1)!.args, ['cluster-reset', file])
    assert.equal(reportsFor(n.name).length, 0, 'a cluster reset does not start the node')

    const agent = await node({distribution: 'rke2', version: R1, role: 'agent', arch: 's390x'})
    const start = await execOnNode(agent, ['sudo', '-n', 'systemctl', 'restart', 'rke2-agent.service'])
    assert.equal(start.exitCode, 0, start.stderr)
    assert.deepEqual(reportsFor(agent.name).at(-1)!.body, {version: R1, arch: 's390x', role: 'agent', images: PULLED})
    assert.equal((await execOnNode(agent, ['uname', '-m'])).stdout, 's390x\n')
  })

  test('rke2 units: systemctl cat/status show rke2\'s unit; no OpenRC, no arm, no SQLite', async () => {
    const n = await node({distribution: 'rke2', version: R1})
    const cat = await execOnNode(n, ['systemctl', 'cat', 'rke2-server'])
    assert.equal(cat.exitCode, 0)
    assert.equal(cat.stdout, `# /usr/local/lib/systemd/system/rke2-server.service\n${systemdUnit('rke2', 'server', n.binaryPath)}`)
    assert.match(cat.stdout, /^Description=Rancher Kubernetes Engine v2 \(server\)$/m)
    const status = await execOnNode(n, ['systemctl', 'status', 'rke2-server'])
    assert.match(status.stdout, /^● rke2-server\.service - Rancher Kubernetes Engine v2 \(server\)\n/)
    assert.equal((await execOnNode(n, ['systemctl', 'show', '-p', 'FragmentPath', '--value', 'rke2-server'])).stdout, '/usr/local/lib/systemd/system/rke2-server.service\n')
    assert.equal((await execOnNode(n, ['systemctl', 'restart', 'k3s'])).exitCode, 5)
    // k3s units print as before.
    const k = await node()
    assert.match((await execOnNode(k, ['systemctl', 'cat', 'k3s'])).stdout, /^# \/etc\/systemd\/system\/k3s\.service\n\[Unit\]\nDescription=Lightweight Kubernetes\n[^]*\nExecStart=.*\/bin\/k3s server\n$/)

    await assert.rejects(node({distribution: 'rke2', version: R1, serviceManager: 'openrc'}), /systemd only/)
    await assert.rejects(node({distribution: 'rke2', version: R1, arch: 'arm'}), /no rke2 build/)
    await assert.rejects(node({distribution: 'rke2', version: R1, embeddedEtcd: false}), /always runs embedded etcd/)
  })

  test('split roles: an etcd-only server snapshots; a control-plane-only one has no datastore', async () => {
    for (const distribution of ['k3s', 'rke2'] as const) {
      const version = distribution === 'rke2' ? R1 : V1
      const etcd = await node({distribution, version, serverKind: 'etcd'})
      assert.equal(etcd.serverKind, 'etcd')
      assert.equal((await execOnNode(etcd, ['sudo', '-n', etcd.binaryPath, 'etcd-snapshot', 'save'])).exitCode, 0)
      const cp = await node({distribution, version, serverKind: 'control-plane'})
      const db = await readdir(join(cp.dataDir, 'server', 'db'))
      assert.deepEqual(db, [], `${distribution}: neither etcd nor state.db`)
      const s = await execOnNode(cp, ['sudo', '-n', cp.binaryPath, 'etcd-snapshot', 'save'])
      assert.equal(s.exitCode, 1)
      assert.match(s.stderr, /etcd datastore disabled/)
    }
    await assert.rejects(node({serverKind: 'etcd', embeddedEtcd: false}), /etcd-only server runs etcd/)
    await assert.rejects(node({role: 'agent', serverKind: 'etcd'}), /serverKind is for servers/)
  })

  test('an RPM-owned binary: rpm -qf names rke2-common, other paths are not owned; the host dpkg knows nothing', async () => {
    const n = await node({distribution: 'rke2', version: R1, packageOwned: 'rpm'})
    assert.equal(n.ownerPackage, 'rke2-common-1.31.3~rke2r1-0.el9.x86_64')
    const owned = await execOnNode(n, ['rpm', '-qf', n.binaryPath])
    assert.deepEqual([owned.exitCode, owned.stdout, owned.stderr], [0, 'rke2-common-1.31.3~rke2r1-0.el9.x86_64\n', ''])
    const other = await execOnNode(n, ['rpm', '-qf', n.envFile])
    assert.deepEqual([other.exitCode, other.stdout], [1, `file ${n.envFile} is not owned by any package\n`])
    const missing = await execOnNode(n, ['rpm', '-qf', '/no/such/file'])
    assert.deepEqual([missing.exitCode, missing.stderr], [1, 'error: file /no/such/file: No such file or directory\n'])
    const fmt = await execOnNode(n, ['rpm', '-q', '--queryformat', '%{NAME} %{VERSION}-%{RELEASE}\\n', '-f', n.binaryPath])
    assert.equal(fmt.stdout, 'rke2-common 1.31.3~rke2r1-0.el9\n')
    assert.equal((await execOnNode(n, ['rpm', '-q', 'rke2-common'])).stdout, 'rke2-common-1.31.3~rke2r1-0.el9.x86_64\n')
    const notInstalled = await execOnNode(n, ['rpm', '-q', 'rke2-server'])
    assert.deepEqual([notInstalled.exitCode, notInstalled.stdout], [1, 'package rke2-server is not installed\n'])
    // The RPM's unit lives under /usr/lib.
    assert.equal((await execOnNode(n, ['systemctl', 'show', '-p', 'FragmentPath', '--value', 'rke2-server'])).stdout, '/usr/lib/systemd/system/rke2-server.service\n')
    // A swapped binary is still the package's path: rpm keeps naming the installed package.
    await installBinary(n, {version: R2})
    assert.equal((await execOnNode(n, ['rpm', '-qf', n.binaryPath])).exitCode, 0)
    if (existsSync('/usr/bin/dpkg')) {
      const d = await execOnNode(n, ['dpkg', '-S', n.binaryPath])
      assert.deepEqual([d.exitCode, d.stderr], [1, `dpkg-query: no path found matching pattern ${n.binaryPath}\n`])
    }
    const plain = await node({distribution: 'rke2', version: R1})
    assert.equal(plain.ownerPackage, undefined)
    assert.equal(existsSync(join(plain.fakebinDir, 'rpm')), false)
  })

  test('a dpkg-owned binary: dpkg -S and dpkg-query answer for it, and as dpkg does for other paths', async () => {
    const n = await node({distribution: 'rke2', version: R1, packageOwned: 'dpkg', arch: 'arm64'})
    assert.equal(n.ownerPackage, 'rke2-common')
    const owned = await execOnNode(n, ['dpkg', '-S', n.binaryPath])
    assert.deepEqual([owned.exitCode, owned.stdout], [0, `rke2-common: ${n.binaryPath}\n`])
    const both = await execOnNode(n, ['dpkg-query', '--search', n.binaryPath, n.envFile])
    assert.equal(both.exitCode, 1)
    assert.equal(both.stdout, `rke2-common: ${n.binaryPath}\n`)
    assert.equal(both.stderr, `dpkg-query: no path found matching pattern ${n.envFile}\n`)
    const show = await execOnNode(n, ['dpkg-query', '-W', '--showformat=${Package} ${Version} ${Architecture}\\n', 'rke2-common'])
    assert.deepEqual([show.exitCode, show.stdout], [0, 'rke2-common 1.31.3~rke2r1-0 arm64\n'])
    assert.match((await execOnNode(n, ['dpkg', '-s', 'rke2-common'])).stdout, /^Status: install ok installed$/m)
    const k3s = await node({packageOwned: 'dpkg'})
    assert.equal((await execOnNode(k3s, ['dpkg', '-S', k3s.binaryPath])).stdout, `k3s: ${k3s.binaryPath}\n`)
    assert.equal((await readServiceLog(k3s)).at(-1)!.source, 'dpkg')
  })

  describe('air-gapped (images: archive)', () => {
    const SMALL = 64 * 1024
    const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex')

    test('the agent images dir holds the release server\'s archive for the version and arch; pull nodes have none', async () => {
      const release = await startReleaseServer({versions: [V1, R1], arches: ['arm64']})
      try {
        const k3s = await node({images: 'archive', arch: 'arm64', role: 'agent'})
        const file = join(agentImagesDir(k3s), 'k3s-airgap-images-arm64.tar.zst')
        assert.deepEqual(await readdir(agentImagesDir(k3s)), ['k3s-airgap-images-arm64.tar.zst'])
        assert.equal(sha(await readFile(file)), release.sha256(V1, 'k3s-airgap-images-arm64.tar.zst'), 'the bytes the release server serves')
        assert.equal((await readFile(file)).length, 2 * 1024 * 1024)
        assert.equal(await readFile(join(k3s.stateDir, 'images-mode'), 'utf8'), 'archive\n')
        const rke2 = await node({images: 'archive', distribution: 'rke2', version: R1, arch: 'arm64'})
        assert.deepEqual(await readdir(agentImagesDir(rke2)), ['rke2-images.linux-arm64.tar.zst'])
        assert.equal(sha(await readFile(join(agentImagesDir(rke2), 'rke2-images.linux-arm64.tar.zst'))), release.sha256(R1, 'rke2-images.linux-arm64.tar.zst'))

        const pull = await node()
        assert.equal(existsSync(agentImagesDir(pull)), false)
        assert.equal(existsSync(join(pull.stateDir, 'images-mode')), false)
      } finally {
        await release.stop()
      }
    })

    test('a start imports the archive of its release: ready; the import is journalled and logged as k3s logs it', async () => {
      const n = await node({images: 'archive', archiveBytes: SMALL})
      const r = await execOnNode(n, ['sudo', '-n', 'systemctl', 'restart', 'k3s'])
      assert.equal(r.exitCode, 0, r.stderr)
      assert.deepEqual(reportsFor(n.name).at(-1)!.body, {version: V1, arch: 'amd64', role: 'server', images: {mode: 'archive', imported: ['k3s-airgap-images-amd64.tar.zst'], ready: true}})
      assert.deepEqual((await readImagesLog(n)).map((e) => e.args), [
        ['imported', 'k3s-airgap-images-amd64.tar.zst', 'k3s', V1, 'amd64', 'k3s-airgap-images-amd64.tar.zst'],
        ['result', 'archive', 'ready', V1, 'amd64'],
      ])
      const log = await readFile(join(n.stateDir, 'k3s.log'), 'utf8')
      const path = join(agentImagesDir(n), 'k3s-airgap-images-amd64.tar.zst')
      assert.ok(log.includes(`level=info msg="Importing images from ${path}"`), log)
      assert.match(log, new RegExp(`level=info msg="Imported images from ${path.replace(/[.+]/g, '\\$&')} in \\d+ms"`))
    })

    test('a new binary with only the old release\'s archive is not ready, until its own archive is there', async () => {
      const n = await node({images: 'archive', archiveBytes: SMALL, role: 'agent'})
      await installBinary(n, {version: V2})
      assert.equal((await execOnNode(n, ['sudo', '-n', 'systemctl', 'restart', 'k3s-agent'])).exitCode, 0)
      assert.deepEqual(reportsFor(n.name).at(-1)!.body, {version: V2, arch: 'amd64', role: 'agent', images: {mode: 'archive', imported: ['k3s-airgap-images-amd64.tar.zst'], ready: false}})
      assert.deepEqual((await readImagesLog(n)).at(-1)!.args, ['result', 'archive', 'missing', V2, 'amd64'])
      assert.equal(await serviceState(n), 'active', 'k3s itself runs')

      // The product's placement: the new archive beside (or over) the old one, .tar.gz this time.
      await seedImagesArchive(n, {version: V2, file: 'k3s-airgap-images-amd64.tar.gz', archiveBytes: SMALL})
      assert.equal((await execOnNode(n, ['sudo', '-n', 'systemctl', 'restart', 'k3s-agent'])).exitCode, 0)
      assert.deepEqual(reportsFor(n.name).at(-1)!.body, {
        version: V2, arch: 'amd64', role: 'agent',
        images: {mode: 'archive', imported: ['k3s-airgap-images-amd64.tar.gz', 'k3s-airgap-images-amd64.tar.zst'], ready: true},
      })
      // Another arch's archive does not count.
      await rm(join(agentImagesDir(n), 'k3s-airgap-images-amd64.tar.gz'))
      await seedImagesArchive(n, {version: V2, arch: 'arm64', archiveBytes: SMALL})
      assert.equal((await execOnNode(n, ['sudo', '-n', 'systemctl', 'restart', 'k3s-agent'])).exitCode, 0)
      assert.equal((reportsFor(n.name).at(-1)!.body as {images: {ready: boolean}}).images.ready, false)
    })

    test('truncated, garbled or misnamed archives fail to import as containerd would; other files are not archives', async () => {
      const n = await node({images: 'archive', archiveBytes: SMALL})
      await installBinary(n, {version: V2})
      const dir = agentImagesDir(n)
      const good = imagesArchiveBytes(V2, 'amd64', 'k3s-airgap-images-amd64.tar.zst', SMALL)
      await writeFile(join(dir, 'a-truncated.tar.zst'), good.subarray(0, good.length - 1000))
      await writeFile(join(dir, 'b-garbled.tar.gz'), Buffer.concat([Buffer.from('\x1f\x8bnot ours\n'), good]))
      await writeFile(join(dir, 'c-zst-named-gz.tar.gz'), good)
      await writeFile(join(dir, 'd-corrupted.tar'), Buffer.concat([imagesArchiveBytes(V2, 'amd64', 'k3s-airgap-images-amd64.tar', SMALL), Buffer.from('\n// corrupted in transit\n')]))
      await writeFile(join(dir, 'k3s-images.txt'), 'docker.io/rancher/mirrored-pause:3.6\n')
      await writeFile(join(dir, 'README.md'), 'notes\n')
      assert.equal((await execOnNode(n, ['sudo', '-n', 'systemctl', 'restart', 'k3s'])).exitCode, 0)
      const images = (reportsFor(n.name).at(-1)!.body as {images: unknown}).images
      assert.deepEqual(images, {mode: 'archive', imported: ['k3s-airgap-images-amd64.tar.zst'], ready: false}, 'only the old release imported')
      assert.deepEqual((await readImagesLog(n)).map((e) => e.args.slice(0, 3)), [
        ['skipped', 'README.md'],
        ['import-error', 'a-truncated.tar.zst', 'unexpected EOF'],
        ['import-error', 'b-garbled.tar.gz', 'gzip: invalid header'],
        ['import-error', 'c-zst-named-gz.tar.gz', 'gzip: invalid header'],
        ['import-error', 'd-corrupted.tar', 'unexpected EOF'],
        ['imported', 'k3s-airgap-images-amd64.tar.zst', 'k3s'],
        ['pre-pull-list', 'k3s-images.txt'],
        ['result', 'archive', 'missing'],
      ])
      const log = await readFile(join(n.stateDir, 'k3s.log'), 'utf8')
      assert.ok(log.includes(`level=error msg="Error encountered while importing ${join(dir, 'a-truncated.tar.zst')}: unexpected EOF"`), log)
      assert.ok(log.includes(`level=error msg="Error encountered while importing ${join(dir, 'b-garbled.tar.gz')}: gzip: invalid header"`), log)
    })

    test('rke2: the whole set, or both core and canal halves; core alone is not enough', async () => {
      const n = await node({images: 'archive', distribution: 'rke2', version: R1, archiveBytes: SMALL, role: 'agent'})
      await installBinary(n, {version: R2})
      await rm(join(agentImagesDir(n), 'rke2-images.linux-amd64.tar.zst'))
      await seedImagesArchive(n, {version: R2, file: 'rke2-images-core.linux-amd64.tar.zst', archiveBytes: SMALL})
      const start = async () => {
        assert.equal((await execOnNode(n, ['sudo', '-n', 'systemctl', 'restart', 'rke2-agent'])).exitCode, 0)
        return (reportsFor(n.name).at(-1)!.body as {images: {ready: boolean; imported: string[]}}).images
      }
      assert.equal((await start()).ready, false)
      await seedImagesArchive(n, {version: R2, file: 'rke2-images-canal.linux-amd64.tar.gz', archiveBytes: SMALL})
      assert.deepEqual(await start(), {mode: 'archive', imported: ['rke2-images-canal.linux-amd64.tar.gz', 'rke2-images-core.linux-amd64.tar.zst'], ready: true})
      assert.equal((await readImagesLog(n)).at(-1)!.source, 'rke2')
    })

    test('pull nodes import what they find but are ready either way', async () => {
      const n = await node({role: 'agent'})
      await seedImagesArchive(n, {version: V1, archiveBytes: SMALL})
      await installBinary(n, {version: V2})
      assert.equal((await execOnNode(n, ['sudo', '-n', 'systemctl', 'restart', 'k3s-agent'])).exitCode, 0)
      assert.deepEqual((reportsFor(n.name).at(-1)!.body as {images: unknown}).images, {mode: 'pull', imported: ['k3s-airgap-images-amd64.tar.zst'], ready: true})
      assert.equal(imagesArchiveSha256(V1, 'amd64', 'k3s-airgap-images-amd64.tar.zst', SMALL), sha(await readFile(join(agentImagesDir(n), 'k3s-airgap-images-amd64.tar.zst'))))
    })
  })
})
