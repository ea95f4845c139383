/**
 * The in-process SSH server (for machines without OpenSSH) behaves like the sshd nodes for
 * what the product uses: exec with the node env, SFTP, host key checks, timeouts, ProxyJump.
 */
import assert from 'node:assert/strict'
import {existsSync, readFileSync, statSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'
import ssh2 from 'ssh2'
import {ConnectionError, HostKeyError, TimeoutError} from '../../src/errors.js'
import {SshFixture, waitForFile, waitGone, type SimNode} from './ssh-fixture.js'

describe('SSH transport against the in-process server', {concurrency: 3}, () => {
  const fx = new SshFixture()
  let key: {path: string; pub: string}
  let n: SimNode

  before(async () => {
    key = await fx.key('id_ed25519')
    n = await fx.node('ip1', {address: '127.0.0.21', kind: 'inproc', authorizedKeys: [key.pub]})
    fx.trust(n.node)
  })
  after(() => fx.cleanup())

  test('exec runs /bin/sh -c in the node dir with the node env; exit status and stderr wired', async () => {
    const t = fx.transport(n.node, {identityFiles: [key.path]})
    const r = await t.exec(['sh', '-c', 'echo "$HOMELAB_SIM_NODE"; echo "$PATH"; pwd; command -v sudo; echo e >&2; exit 5'])
    assert.deepEqual(r.stdout.split('\n'), ['ip1', `${n.dir}/fakebin:/usr/local/bin:/usr/bin:/bin`, n.dir, join(n.dir, 'fakebin', 'sudo'), ''])
    assert.equal(r.stderr, 'e\n')
    assert.equal(r.exitCode, 5)
    assert.equal(await t.run(['cat'], {stdin: 'in'}), 'in')
    const hostile = ['', "it's", '$(id)', 'a\nb', '-n']
    assert.deepEqual((await t.run(['printf', '%s\\0', ...hostile])).split('\0').slice(0, -1), hostile)
    assert.equal(await t.run(['sh', '-c', 'echo "$HOMELAB_SIM_PRIVILEGED"'], {privileged: true}), '1\n')
    assert.deepEqual(n.sudoCalls().at(-1), ['-n', '--', 'sh', '-c', 'echo "$HOMELAB_SIM_PRIVILEGED"'])
  })

  test('the env file is read for every session', async () => {
    const t = fx.transport(n.node, {identityFiles: [key.path]})
    const envFile = join(n.dir, 'env')
    const original = readFileSync(envFile, 'utf8')
    writeFileSync(envFile, `${original}HOMELAB_SIM_CONTROL=http://127.0.0.1:1/\n`)
    try {
      assert.equal(await t.run(['sh', '-c', 'echo "$HOMELAB_SIM_CONTROL"']), 'http://127.0.0.1:1/\n')
    } finally {
      writeFileSync(envFile, original)
    }
  })

  test('putFile over SFTP with mode, and the SFTP reads work with ssh2', async () => {
    const t = fx.transport(n.node, {identityFiles: [key.path]})
    const bytes = Buffer.from(Array.from({length: 200_000}, (_, i) => (i * 7) % 256))
    const dest = join(n.dir, 'bin.new')
    await t.putFile(bytes, dest, {mode: 0o750})
    assert.ok(readFileSync(dest).equals(bytes))
    assert.equal(statSync(dest).mode & 0o777, 0o750)
    await assert.rejects(t.putFile(bytes, join(n.dir, 'missing', 'x')), /no such directory/)

    // A raw ssh2 client exercises the read side: stat, readdir, read, rename, mkdir, unlink.
    const client = new ssh2.Client()
    await new Promise<void>((resolve, reject) => {
      client.once('ready', () => resolve()).once('error', reject)
      client.connect({host: n.node.host, port: n.node.port, username: n.node.user, privateKey: readFileSync(key.path), hostVerifier: () => true})
    })
    try {
      const sftp = await new Promise<ssh2.SFTPWrapper>((resolve, reject) => client.sftp((e, s) => (e ? reject(e) : resolve(s))))
      const call = <T>(fn: (cb: (err: Error | null | undefined, v: T) => void) => void) =>
        new Promise<T>((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))))
      const st = await call<ssh2.Stats>((cb) => sftp.stat(dest, cb))
      assert.equal(st.size, bytes.length)
      assert.equal(st.mode & 0o777, 0o750)
      assert.ok((await call<ssh2.FileEntry[]>((cb) => sftp.readdir(n.dir, cb))).some((e) => e.filename === 'bin.new'))
      const back = await call<Buffer>((cb) => sftp.readFile(dest, cb as never))
      assert.ok(back.equals(bytes))
      await call<undefined>((cb) => sftp.mkdir(join(n.dir, 'made'), cb as never))
      assert.ok(statSync(join(n.dir, 'made')).isDirectory())
      await call<undefined>((cb) => sftp.rename(dest, join(n.dir, 'made', 'moved'), cb as never))
      assert.ok(existsSync(join(n.dir, 'made', 'moved')))
      await call<undefined>((cb) => sftp.unlink(join(n.dir, 'made', 'moved'), cb as never))
      assert.ok(!existsSync(join(n.dir, 'made', 'moved')))
      await assert.rejects(call((cb) => sftp.stat(join(n.dir, 'nope'), cb)), (e: {code?: number}) => e.code === 2)
      assert.equal(await call<string>((cb) => sftp.realpath('.', cb)), n.dir)
    } finally {
      client.end()
    }
  })

  test('host keys: unknown refused, accept-new records, changed refused', async () => {
    const fresh = join(fx.root, 'inproc_known_hosts')
    const marker = join(n.dir, 'should-not-exist')
    await assert.rejects(fx.transport(n.node, {identityFiles: [key.path], knownHostsFiles: [fresh]}).run(['touch', marker]), (e: unknown) => e instanceof HostKeyError && e.kind === 'unknown')
    assert.ok(!existsSync(marker))
    await fx.transport(n.node, {identityFiles: [key.path], knownHostsFiles: [fresh]}, {acceptNewHostKeys: true}).run(['true'])
    assert.equal(readFileSync(fresh, 'utf8'), `${n.node.knownHostsLine}\n`)

    const other = await fx.key('other')
    const wrong = join(fx.root, 'inproc_wrong_known_hosts')
    writeFileSync(wrong, `[${n.node.host}]:${n.node.port} ${other.pub}\n`)
    await assert.rejects(fx.transport(n.node, {identityFiles: [key.path], knownHostsFiles: [wrong]}, {acceptNewHostKeys: true}).run(['true']), (e: unknown) => e instanceof HostKeyError && e.kind === 'changed')
  })

  test('wrong key is refused', async () => {
    const stranger = await fx.key('stranger')
    await assert.rejects(fx.transport(n.node, {identityFiles: [stranger.path]}).run(['true']), ConnectionError)
  })

  test('timeout stops the command and its children', async () => {
    const t = fx.transport(n.node, {identityFiles: [key.path]})
    const pidFile = join(n.dir, 'state', 'bg.pid')
    await t.run(['true'])
    await assert.rejects(t.exec(['sh', '-c', `sleep 5 & echo $! > '${pidFile}'; wait`], {timeoutMs: 500}), TimeoutError)
    const text = await waitForFile(pidFile, 1500).catch(() => undefined)
    if (text === undefined) {
      // On a very busy machine the shell may be stopped before it started: then it must stay so.
      await new Promise((r) => setTimeout(r, 500))
      assert.ok(!existsSync(pidFile))
    } else {
      assert.ok(await waitGone(Number(text)))
    }
  })

  test('ProxyJump through an in-process hop', async () => {
    const hop = await fx.node('ip-hop', {address: '127.0.0.22', kind: 'inproc', authorizedKeys: [key.pub]})
    fx.trust(hop.node)
    const t = fx.transport(n.node, {identityFiles: [key.path], proxyJump: `${hop.node.user}@127.0.0.22:${hop.node.port}`})
    assert.equal(await t.run(['sh', '-c', 'echo "$HOMELAB_SIM_NODE"']), 'ip1\n')
    assert.match(readFileSync(hop.node.logFile, 'utf8'), new RegExp(`direct-tcpip .* to 127\\.0\\.0\\.21:${n.node.port}`))
  })
})
