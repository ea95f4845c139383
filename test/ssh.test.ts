/**
 * The SSH transport against real OpenSSH sshd processes on loopback (test/sim/sshd.ts).
 * Without sshd these tests are skipped, except under CI=true where they must run and fail.
 */
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {existsSync, readFileSync, statSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'
import {AbortedError, CommandError, ConnectionError, HomelabError, HostKeyError, TimeoutError} from '../src/errors.js'
import {sha256Fingerprint} from '../src/transport/known-hosts.js'
import {TransportPool} from '../src/transport/pool.js'
import {SshKeyStore} from '../src/transport/ssh-keys.js'
import type {SshTransportEvent} from '../src/transport/ssh-transport.js'
import {SshFixture, opensshSkipReason, waitForFile, waitGone, type SimNode} from './transport/ssh-fixture.js'

const skip = opensshSkipReason()

const HOSTILE = ['', ' ', 'two words', "it's", '"dq"', '$(touch pwned)', '`touch pwned`', '$HOME', 'a\nb', '-n', '--', '; rm -rf / #', '| cat', '*', '~', '!x', "'; echo no; '", 'ünï ✓']

function fingerprintOf(line: string): string {
  return sha256Fingerprint(Buffer.from(line.split(' ')[1]!, 'base64'))
}

// Tests are independent (own nodes, or only reading n1), so they run side by side.
describe('SSH transport against OpenSSH', {skip, concurrency: 4}, () => {
  const fx = new SshFixture()
  let key: {path: string; pub: string}
  let n1: SimNode

  before(async () => {
    key = await fx.key('id_ed25519')
    n1 = await fx.node('n1', {address: '127.0.0.11', authorizedKeys: [key.pub]})
    fx.trust(n1.node)
  })
  after(() => fx.cleanup())

  test('key auth; commands see the node env (its PATH first); exit codes and stderr come back', async () => {
    const t = fx.transport(n1.node, {identityFiles: [key.path]})
    const r = await t.exec(['sh', '-c', 'echo "$HOMELAB_SIM_NODE"; echo "$PATH"; command -v sudo; echo "$HOME"; echo oops >&2; exit 7'])
    const [name, path, sudo, home] = r.stdout.split('\n')
    assert.equal(name, 'n1')
    assert.equal(home, n1.dir, "the node's own HOME, so the runner's ~/.bashrc stays out of every session")
    assert.ok(path!.includes(`${n1.dir}/fakebin:`), path)
    assert.ok(path!.indexOf(`${n1.dir}/fakebin`) < path!.indexOf(':/usr/bin'), 'fakebin comes before the system dirs')
    assert.equal(sudo, join(n1.dir, 'fakebin', 'sudo'))
    assert.equal(r.stderr, 'oops\n', 'nothing but the command stderr (the pid line is stripped)')
    assert.equal(r.exitCode, 7)
    await assert.rejects(t.run(['sh', '-c', 'echo bad >&2; exit 3']), (e: unknown) => e instanceof CommandError && e.exitStatus === 3 && /n1/.test(e.message) && e.stderr === 'bad\n')
    assert.equal(await t.run(['cat'], {stdin: 'piped input'}), 'piped input')
    assert.equal(await t.run(['cat']), '', 'no stdin means EOF')
  })

  test('hostile arguments arrive byte for byte and nothing is interpreted', async () => {
    const t = fx.transport(n1.node, {identityFiles: [key.path]})
    const out = await t.run(['printf', '%s\\0', ...HOSTILE])
    assert.deepEqual(out.split('\0').slice(0, -1), HOSTILE)
    assert.ok(!existsSync(join(fx.home, 'pwned')) && !existsSync(join(n1.dir, 'pwned')))
  })

  test('one connection is reused for many commands, more than sshd MaxSessions at once', async () => {
    const n = await fx.node('busy', {address: '127.0.0.19', authorizedKeys: [key.pub]})
    fx.trust(n.node)
    const t = fx.transport(n.node, {identityFiles: [key.path]})
    const results = await Promise.all(Array.from({length: 12}, (_, i) => t.run(['sh', '-c', `sleep 0.1; echo ${i}`])))
    assert.deepEqual(results, Array.from({length: 12}, (_, i) => `${i}\n`))
    const logins = readFileSync(n.node.logFile, 'utf8').split('Accepted publickey').length - 1
    assert.equal(logins, 1, 'exactly one login for all commands')
  })

  test('agent auth through a real ssh-agent', async () => {
    const agentKey = await fx.key('id_agent')
    const n = await fx.node('agent-node', {address: '127.0.0.12', authorizedKeys: [agentKey.pub]})
    fx.trust(n.node)
    // No key file anywhere: only the agent can log in.
    const noAgent = fx.transport(n.node, {})
    await assert.rejects(noAgent.run(['true']), (e: unknown) => e instanceof ConnectionError && /authentication failed/.test(e.message) && /authorized_keys/.test(e.hint ?? ''))
    const sock = await fx.agent(agentKey.path)
    const t = fx.transport(n.node, {}, {env: {SSH_AUTH_SOCK: sock}})
    assert.equal(await t.run(['echo', 'via agent']), 'via agent\n')
    // IdentitiesOnly: the agent may only offer the configured identity (not authorized here).
    const unrelated = await fx.key('id_unrelated')
    const only = fx.transport(n.node, {identityFiles: [unrelated.path]}, {env: {SSH_AUTH_SOCK: sock}, sshConfigText: 'Host *\n  IdentitiesOnly yes\n'})
    await assert.rejects(only.run(['true']), ConnectionError)
    const notOnly = fx.transport(n.node, {identityFiles: [unrelated.path]}, {env: {SSH_AUTH_SOCK: sock}})
    assert.equal(await notOnly.run(['echo', 'agent first']), 'agent first\n')
  })

  test('encrypted key: passphrase from the env var or the prompt; wrong one is a clear error', async () => {
    const enc = await fx.key('id_enc', 'correct horse')
    const n = await fx.node('enc-node', {address: '127.0.0.13', authorizedKeys: [enc.pub]})
    fx.trust(n.node)
    const t = fx.transport(n.node, {identityFiles: [enc.path]}, {env: {HOMELAB_SSH_PASSPHRASE: 'correct horse'}})
    assert.equal(await t.run(['echo', 'decrypted']), 'decrypted\n')

    const asked: string[] = []
    const prompted = fx.transport(n.node, {identityFiles: [enc.path]}, {askPassphrase: async (p) => (asked.push(p), 'correct horse')})
    assert.equal(await prompted.run(['true']), '')
    assert.deepEqual(asked, [enc.path])
    await prompted.close()
    assert.equal(await prompted.run(['true']), '', 'reconnects without asking again')
    assert.equal(asked.length, 1)

    const wrong = fx.transport(n.node, {identityFiles: [enc.path]}, {env: {HOMELAB_SSH_PASSPHRASE: 'nope'}})
    await assert.rejects(wrong.run(['true']), (e: unknown) => e instanceof ConnectionError && /wrong passphrase/.test(e.message) && !/nope/.test(`${e.message} ${e.hint}`))

    const events: SshTransportEvent[] = []
    const none = fx.transport(n.node, {identityFiles: [enc.path]}, {onEvent: (e) => events.push(e)})
    await assert.rejects(none.run(['true']), ConnectionError)
    assert.ok(events.some((e) => e.type === 'identity-skipped' && /HOMELAB_SSH_PASSPHRASE/.test(e.reason)))
  })

  test('one key store for a run: an encrypted key is asked for once, however many nodes connect at once', async () => {
    const enc = await fx.key('id_enc_shared', 'correct horse')
    const nodes = await Promise.all(['127.0.0.31', '127.0.0.32', '127.0.0.33'].map((address, i) => fx.node(`enc-${i}`, {address, authorizedKeys: [enc.pub]})))
    for (const n of nodes) fx.trust(n.node)
    const asked: string[] = []
    const askPassphrase = async (p: string) => {
      asked.push(p)
      await new Promise((r) => setTimeout(r, 50)) // a person typing: the other nodes connect meanwhile
      return 'correct horse'
    }
    const keys = new SshKeyStore()
    const transports = nodes.map((n) => fx.transport(n.node, {identityFiles: [enc.path]}, {askPassphrase, keys}))
    assert.deepEqual(await Promise.all(transports.map((t) => t.run(['echo', 'in']))), ['in\n', 'in\n', 'in\n'])
    assert.deepEqual(asked, [enc.path])
    // Without a shared store each transport asks for itself (what the store saves a run of 200 nodes).
    const alone = fx.transport(nodes[0]!.node, {identityFiles: [enc.path]}, {askPassphrase})
    assert.equal(await alone.run(['true']), '')
    assert.equal(asked.length, 2)
  })

  test('unknown host key: refused with fingerprint and fix, nothing runs; accept-new records it', async () => {
    const n = await fx.node('new-node', {address: '127.0.0.14', authorizedKeys: [key.pub]})
    const known = join(fx.root, 'fresh', '.ssh', 'known_hosts')
    const marker = join(n.dir, 'ran')
    const strict = fx.transport(n.node, {identityFiles: [key.path], knownHostsFiles: [known]})
    await assert.rejects(strict.run(['touch', marker]), (e: unknown) => {
      assert.ok(e instanceof HostKeyError)
      assert.equal(e.kind, 'unknown')
      assert.equal(e.fingerprint, fingerprintOf(n.node.hostKeyLine))
      assert.ok(e.message.includes(e.fingerprint))
      assert.ok(e.hint!.includes(`ssh-keyscan -p ${n.node.port} -t ed25519 -H 127.0.0.14 >>`), e.hint)
      assert.ok(e.hint!.includes('--accept-new-host-keys'))
      return true
    })
    assert.ok(!existsSync(marker))
    assert.doesNotMatch(readFileSync(n.node.logFile, 'utf8'), /Accepted publickey/, 'we never even authenticated')

    const events: SshTransportEvent[] = []
    const trusting = fx.transport(n.node, {identityFiles: [key.path], knownHostsFiles: [known]}, {acceptNewHostKeys: true, onEvent: (e) => events.push(e)})
    await trusting.run(['touch', marker])
    assert.ok(existsSync(marker))
    assert.equal(readFileSync(known, 'utf8'), `[127.0.0.14]:${n.node.port} ${n.node.hostKeyLine}\n`)
    assert.equal(statSync(known).mode & 0o777, 0o600)
    assert.ok(events.some((e) => e.type === 'host-key-added' && e.fingerprint === fingerprintOf(n.node.hostKeyLine)))
    // Now a strict transport accepts it.
    assert.equal(await fx.transport(n.node, {identityFiles: [key.path], knownHostsFiles: [known]}).run(['echo', 'ok']), 'ok\n')
  })

  test('changed host key: refused even with accept-new, with the ssh-keygen -R fix; revoked key refused', async () => {
    const n = await fx.node('changed-node', {address: '127.0.0.15', authorizedKeys: [key.pub]})
    const other = await fx.key('impostor')
    const known = join(fx.root, 'changed_known_hosts')
    writeFileSync(known, `[127.0.0.15]:${n.node.port} ${other.pub.split(' ').slice(0, 2).join(' ')}\n`)
    const marker = join(n.dir, 'ran')
    const t = fx.transport(n.node, {identityFiles: [key.path], knownHostsFiles: [known]}, {acceptNewHostKeys: true})
    await assert.rejects(t.run(['touch', marker]), (e: unknown) => {
      assert.ok(e instanceof HostKeyError)
      assert.equal(e.kind, 'changed')
      assert.match(e.message, /CHANGED/)
      assert.ok(e.hint!.includes(`ssh-keygen -R '[127.0.0.15]:${n.node.port}' -f`), e.hint)
      return true
    })
    assert.ok(!existsSync(marker))
    assert.equal(readFileSync(known, 'utf8').split('\n').length, 2, 'known_hosts untouched')

    const revoked = join(fx.root, 'revoked_known_hosts')
    writeFileSync(revoked, `@revoked * ${n.node.hostKeyLine}\n${n.node.knownHostsLine}\n`)
    const r = fx.transport(n.node, {identityFiles: [key.path], knownHostsFiles: [revoked]}, {acceptNewHostKeys: true})
    await assert.rejects(r.run(['touch', marker]), (e: unknown) => e instanceof ConnectionError && /revoked/.test(e.message))
    assert.ok(!existsSync(marker))
  })

  test('hashed known_hosts entries are honoured', async () => {
    const known = join(fx.root, 'hashed_known_hosts')
    writeFileSync(known, `${n1.node.knownHostsLine}\n`)
    execFileSync('ssh-keygen', ['-q', '-H', '-f', known], {stdio: 'ignore'})
    assert.match(readFileSync(known, 'utf8'), /^\|1\|/)
    const t = fx.transport(n1.node, {identityFiles: [key.path], knownHostsFiles: [known]})
    assert.equal(await t.run(['echo', 'hashed']), 'hashed\n')
  })

  test('ProxyJump: the target is reached through the jump host, whose key is checked too', async () => {
    const hop = await fx.node('hop', {address: '127.0.0.16', authorizedKeys: [key.pub], logLevel: 'DEBUG1'})
    const target = await fx.node('behind', {address: '127.0.0.17', authorizedKeys: [key.pub]})
    fx.trust(target.node)
    const sshConfig = `Host bastion\n  HostName 127.0.0.16\n  Port ${hop.node.port}\n  User ${hop.node.user}\n`
    // Hop key unknown: refused, naming the hop.
    const untrusted = fx.transport(target.node, {identityFiles: [key.path], proxyJump: 'bastion'}, {sshConfigText: sshConfig})
    await assert.rejects(untrusted.run(['true']), (e: unknown) => e instanceof HostKeyError && e.host === `127.0.0.16:${hop.node.port}`)

    fx.trust(hop.node)
    const t = fx.transport(target.node, {identityFiles: [key.path], proxyJump: 'bastion'}, {sshConfigText: sshConfig})
    assert.equal(await t.run(['sh', '-c', 'echo "$HOMELAB_SIM_NODE"']), 'behind\n')
    const hopLog = readFileSync(hop.node.logFile, 'utf8')
    assert.match(hopLog, new RegExp(`direct[-_]tcpip.*target 127\\.0\\.0\\.17 port ${target.node.port}`), `the hop opened the tunnel to the target:\n${hopLog}`)
    assert.match(readFileSync(target.node.logFile, 'utf8'), /Accepted publickey/)
    // Stopping the hop cuts the target's connection: the traffic really went through it.
    await hop.node.stop()
    await assert.rejects(t.run(['true']), ConnectionError)
  })

  test('command timeout stops the remote command and what it started', async () => {
    const t = fx.transport(n1.node, {identityFiles: [key.path]})
    const pidFile = join(n1.dir, 'state', 'sleep.pid')
    await t.run(['true']) // connected, so the clock below measures the command only
    const started = Date.now()
    await assert.rejects(t.exec(['sh', '-c', `sleep 5 & echo $! > '${pidFile}'; wait`], {timeoutMs: 300}), TimeoutError)
    // Bounded by the timeout plus the TERM/KILL grace (500 ms here), with room for a busy machine.
    assert.ok(Date.now() - started < 4000, `took ${Date.now() - started} ms`)
    const text = await waitForFile(pidFile, 1500).catch(() => undefined)
    if (text === undefined) {
      // On a very busy machine the shell may be stopped before it started: then it must stay so.
      await new Promise((r) => setTimeout(r, 500))
      assert.ok(!existsSync(pidFile), 'the command ran after it was stopped')
    } else {
      assert.ok(await waitGone(Number(text)), `remote sleep (pid ${text.trim()}) is still running`)
    }
    assert.equal(await t.run(['echo', 'still usable']), 'still usable\n', 'the connection survives a timeout')
  })

  test('cancellation through an AbortSignal', async () => {
    const t = fx.transport(n1.node, {identityFiles: [key.path]})
    const pidFile = join(n1.dir, 'state', 'abort.pid')
    const controller = new AbortController()
    const running = t.exec(['sh', '-c', `echo $$ > '${pidFile}'; exec sleep 5`], {signal: controller.signal})
    const pid = Number(await waitForFile(pidFile))
    controller.abort()
    await assert.rejects(running, AbortedError)
    assert.ok(await waitGone(pid), 'remote process is gone')
    const marker = join(n1.dir, 'never')
    await assert.rejects(t.exec(['touch', marker], {signal: AbortSignal.abort()}), AbortedError)
    assert.ok(!existsSync(marker))
  })

  test('become sudo: privileged commands run as `sudo -n -- argv`; a password prompt gives the NOPASSWD hint', async () => {
    const t = fx.transport(n1.node, {identityFiles: [key.path]}, {become: 'sudo'})
    assert.equal(await t.run(['sh', '-c', 'echo "priv=$HOMELAB_SIM_PRIVILEGED"', "it's"], {privileged: true}), 'priv=1\n')
    assert.equal(await t.run(['sh', '-c', 'echo "priv=$HOMELAB_SIM_PRIVILEGED"']), 'priv=\n', 'unprivileged commands skip sudo')
    assert.deepEqual(n1.sudoCalls().at(-1), ['-n', '--', 'sh', '-c', 'echo "priv=$HOMELAB_SIM_PRIVILEGED"', "it's"])
    const calls = n1.sudoCalls().length
    const none = fx.transport(n1.node, {identityFiles: [key.path]}, {become: 'none'})
    await none.run(['true'], {privileged: true})
    assert.equal(n1.sudoCalls().length, calls, 'become none never calls sudo')

    writeFileSync(join(n1.dir, 'state', 'sudo-needs-password'), '')
    try {
      await assert.rejects(t.run(['systemctl', 'restart', 'k3s'], {privileged: true}), (e: unknown) => e instanceof CommandError && /NOPASSWD/.test(e.hint ?? '') && /password is required/.test(e.message))
    } finally {
      execFileSync('rm', ['-f', join(n1.dir, 'state', 'sudo-needs-password')])
    }
  })

  test('putFile writes over SFTP with the exact mode; bad paths are clear errors', async () => {
    const t = fx.transport(n1.node, {identityFiles: [key.path]})
    const bytes = Buffer.from(Array.from({length: 300_000}, (_, i) => i % 251))
    const dest = join(n1.dir, 'k3s.new')
    await t.putFile(bytes, dest, {mode: 0o755})
    assert.ok(readFileSync(dest).equals(bytes))
    assert.equal(statSync(dest).mode & 0o777, 0o755)
    const local = join(fx.root, 'local.txt')
    writeFileSync(local, 'from a file\n')
    await t.putFile(local, join(n1.dir, 'copied.txt'), {mode: 0o640})
    assert.equal(readFileSync(join(n1.dir, 'copied.txt'), 'utf8'), 'from a file\n')
    assert.equal(statSync(join(n1.dir, 'copied.txt')).mode & 0o777, 0o640)
    await assert.rejects(t.putFile(bytes, join(n1.dir, 'no', 'such', 'dir')), (e: unknown) => e instanceof HomelabError && /no such directory/.test(e.message))
    await assert.rejects(t.putFile(join(fx.root, 'missing-local'), join(n1.dir, 'from-missing')), (e: unknown) => e instanceof HomelabError && /cannot read/.test(e.message))
    assert.ok(!existsSync(join(n1.dir, 'from-missing')), 'nothing created on the node')
  })

  test('a dropped connection is re-opened for the next command; the pool reuses transports', async () => {
    const n = await fx.node('flaky', {address: '127.0.0.18', authorizedKeys: [key.pub]})
    fx.trust(n.node)
    const pool = new TransportPool((name) => fx.transport(n.node, {identityFiles: [key.path]}, {node: name}))
    const t = pool.get('flaky')
    assert.equal(pool.get('flaky'), t)
    assert.equal(await t.run(['echo', '1']), '1\n')
    await n.node.restart() // kills sshd and its sessions: our connection drops
    assert.equal(await t.run(['echo', '2']), '2\n')
    await pool.closeAll()
  })

  test('an unreachable node is a ConnectionError within the connect timeout', async () => {
    const t = fx.transport(n1.node, {identityFiles: [key.path], port: 1}, {connectTimeoutMs: 2000})
    const started = Date.now()
    await assert.rejects(t.run(['true']), (e: unknown) => e instanceof ConnectionError && /127\.0\.0\.11/.test(e.message))
    assert.ok(Date.now() - started < 2500)
  })
})
