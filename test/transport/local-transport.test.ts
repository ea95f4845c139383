import assert from 'node:assert/strict'
import {existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {Readable} from 'node:stream'
import {after, test} from 'node:test'
import {AbortedError, CommandError, TimeoutError} from '../../src/errors.js'
import {LocalTransport} from '../../src/transport/local-transport.js'
import {TransportPool} from '../../src/transport/pool.js'

const dir = mkdtempSync(join(tmpdir(), 'homelab-local-'))
after(() => rmSync(dir, {recursive: true, force: true}))
const fakebin = join(dir, 'fakebin')
mkdirSync(fakebin)
// A sudo that records its argv (NUL-separated) and runs what follows `--`.
writeFileSync(
  join(fakebin, 'sudo'),
  `#!/bin/sh\nprintf '%s\\0' "$@" >> '${dir}/sudo.argv'\nwhile [ "$1" != "--" ]; do shift; done; shift\nexec "$@"\n`,
  {mode: 0o755},
)
const env = {PATH: `${fakebin}:/usr/bin:/bin`, HOME: dir}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ')
  } catch {
    return false
  }
}

test('exec returns output and exit code; run throws CommandError with stderr', async () => {
  const t = new LocalTransport({node: 'here', env})
  assert.deepEqual(await t.exec(['sh', '-c', 'echo out; echo err >&2; exit 4']), {stdout: 'out\n', stderr: 'err\n', exitCode: 4})
  assert.equal(await t.run(['printf', '%s|', 'a b', "c'd", '$(x)']), "a b|c'd|$(x)|")
  await assert.rejects(t.run(['sh', '-c', 'echo boom >&2; exit 2']), (e: unknown) => e instanceof CommandError && e.exitStatus === 2 && /boom/.test(e.message))
  assert.equal((await t.exec(['definitely-not-a-command-homelab'])).exitCode, 127)
})

test('stdin as string, Buffer and stream', async () => {
  const t = new LocalTransport({node: 'here', env})
  assert.equal(await t.run(['cat'], {stdin: 'hello'}), 'hello')
  assert.equal(await t.run(['cat'], {stdin: Buffer.from([0x61, 0x62])}), 'ab')
  assert.equal(await t.run(['cat'], {stdin: Readable.from(['x', 'y'])}), 'xy')
  assert.equal(await t.run(['cat']), '', 'no stdin means EOF, not a hang')
})

test('timeout stops the command and everything it started', async () => {
  const t = new LocalTransport({node: 'here', env, killGraceMs: 500})
  const pidFile = join(dir, 'bg.pid')
  const started = Date.now()
  await assert.rejects(t.exec(['sh', '-c', `sleep 30 & echo $! > '${pidFile}'; wait`], {timeoutMs: 300}), TimeoutError)
  assert.ok(Date.now() - started < 4000)
  if (!existsSync(pidFile)) {
    // On a very busy machine the shell may be stopped before it started: then it must stay so.
    await new Promise((r) => setTimeout(r, 500))
    assert.ok(!existsSync(pidFile))
    return
  }
  const pid = Number(readFileSync(pidFile, 'utf8'))
  const deadline = Date.now() + 2000
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  assert.ok(!alive(pid), 'the background sleep must be gone')
})

test('abort stops the command with AbortedError', async () => {
  const t = new LocalTransport({node: 'here', env})
  const controller = new AbortController()
  setTimeout(() => controller.abort(), 200)
  await assert.rejects(t.exec(['sleep', '30'], {signal: controller.signal}), AbortedError)
  await assert.rejects(t.exec(['true'], {signal: AbortSignal.abort()}), AbortedError)
})

test('privileged commands go through sudo -n -- unless we are root', async () => {
  const t = new LocalTransport({node: 'here', env, uid: 1000})
  assert.equal(await t.run(['echo', 'as root?'], {privileged: true}), 'as root?\n')
  assert.deepEqual(readFileSync(join(dir, 'sudo.argv'), 'utf8').split('\0').slice(0, -1), ['-n', '--', 'echo', 'as root?'])
  rmSync(join(dir, 'sudo.argv'))
  await new LocalTransport({node: 'here', env, uid: 0}).run(['true'], {privileged: true})
  await new LocalTransport({node: 'here', env, uid: 1000, become: 'none'}).run(['true'], {privileged: true})
  assert.ok(!existsSync(join(dir, 'sudo.argv')))
})

test('a sudo that wants a password gives the NOPASSWD hint', async () => {
  const bin = join(dir, 'pwbin')
  mkdirSync(bin)
  writeFileSync(join(bin, 'sudo'), '#!/bin/sh\necho "sudo: a password is required" >&2\nexit 1\n', {mode: 0o755})
  const t = new LocalTransport({node: 'here', env: {PATH: `${bin}:/usr/bin:/bin`}, uid: 1000})
  await assert.rejects(t.run(['systemctl', 'restart', 'k3s'], {privileged: true}), (e: unknown) => e instanceof CommandError && /NOPASSWD/.test(e.hint ?? ''))
})

test('putFile copies bytes and sets the exact mode', async () => {
  const t = new LocalTransport({node: 'here', env})
  const target = join(dir, 'k3s.new')
  await t.putFile(Buffer.from('#!/bin/sh\necho hi\n'), target, {mode: 0o755})
  assert.equal(statSync(target).mode & 0o777, 0o755)
  assert.equal(await t.run([target]), 'hi\n')
  const copy = join(dir, 'copy')
  await t.putFile(target, copy, {mode: 0o600})
  assert.equal(readFileSync(copy, 'utf8'), readFileSync(target, 'utf8'))
  assert.equal(statSync(copy).mode & 0o777, 0o600)
  await assert.rejects(t.putFile(Buffer.from('x'), join(dir, 'missing', 'f')), /cannot write/)
})

test('TransportPool gives one transport per node and closes them all', async () => {
  let made = 0
  const closed: string[] = []
  const pool = new TransportPool((node) => {
    made++
    const t = new LocalTransport({node, env})
    t.close = async () => {
      closed.push(node)
    }
    return t
  })
  assert.equal(pool.get('a'), pool.get('a'))
  assert.notEqual(pool.get('a'), pool.get('b'))
  assert.equal(made, 2)
  await pool.closeAll()
  assert.deepEqual(closed.sort(), ['a', 'b'])
  assert.throws(() => pool.get('a'), /closed/)
})
