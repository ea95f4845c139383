/**
 * The same simulated node as sshd.ts, served by ssh2's server API inside this process, for
 * machines without OpenSSH (`npm run demo` on a laptop). Real protocol and real host key; a
 * session's `exec` runs `/bin/sh -c <command>` as this user, in the node's directory, with the
 * node's env file (re-read for every session). Signals (and a channel closed while its command
 * runs) stop the command's whole process group. SFTP covers what the product's putFile and
 * simple reads need; `direct-tcpip` lets it act as a ProxyJump hop to loopback addresses.
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {existsSync} from 'node:fs'
import {appendFile, chmod, chown, mkdir, open, readdir, readFile, readlink, realpath, rename, rm, rmdir, stat, lstat, symlink, truncate, utimes, writeFile, type FileHandle} from 'node:fs/promises'
import {connect, type Server as NetServer, type Socket} from 'node:net'
import {userInfo} from 'node:os'
import {join, resolve as resolvePath} from 'node:path'
import ssh2 from 'ssh2'
import type {Attributes, Connection, FileEntry, ParsedKey, PublicKeyAuthContext, ServerChannel, SFTPWrapper} from 'ssh2'
import {assertLoopback, readNodeEnv, waitForBanner, within, type SshNode, type SshNodeOptions} from './sshd.js'

const {Server, utils} = ssh2
const {STATUS_CODE} = utils.sftp

export type InprocSshNodeOptions = Omit<SshNodeOptions, 'logLevel'> & {
  /** The user that may log in; default the user running this process (as a non-root sshd). */
  user?: string
}

/** The key part of an authorized_keys line, which may start with options. */
function parseAuthorizedKey(line: string): ParsedKey {
  const match = /(?:^|\s)((?:ssh-|ecdsa-|sk-)\S+\s+[A-Za-z0-9+/]+=*)/.exec(line.trim())
  const parsed = match ? utils.parseKey(match[1]!) : new Error('no key on the line')
  if (parsed instanceof Error) throw new Error(`authorized key not understood: ${parsed.message}: ${line}`)
  return Array.isArray(parsed) ? (parsed[0] as ParsedKey) : parsed
}

function statusFor(error: unknown): number {
  switch ((error as NodeJS.ErrnoException).code) {
    case 'ENOENT':
    case 'ENOTDIR':
      return STATUS_CODE.NO_SUCH_FILE
    case 'EACCES':
    case 'EPERM':
      return STATUS_CODE.PERMISSION_DENIED
    default:
      return STATUS_CODE.FAILURE
  }
}

function toAttrs(s: Awaited<ReturnType<typeof stat>>): Attributes {
  return {
    mode: Number(s.mode),
    uid: Number(s.uid),
    gid: Number(s.gid),
    size: Number(s.size),
    atime: Math.floor(Number(s.atimeMs) / 1000),
    mtime: Math.floor(Number(s.mtimeMs) / 1000),
  }
}

function longname(name: string, s: Awaited<ReturnType<typeof stat>>): string {
  const kind = s.isDirectory() ? 'd' : s.isSymbolicLink() ? 'l' : '-'
  const bits = Number(s.mode) & 0o777
  const rwx = [6, 3, 0].map((shift) => ['r', 'w', 'x'].map((c, i) => ((bits >> shift) & (4 >> i) ? c : '-')).join('')).join('')
  return `${kind}${rwx} 1 ${s.uid} ${s.gid} ${s.size} ${new Date(Number(s.mtimeMs)).toISOString()} ${name}`
}

type Handle = {kind: 'file'; fh: FileHandle; path: string} | {kind: 'dir'; path: string; done: boolean}

/**
 * Faults a test can put into a node's SSH server (in-process only), each for the next `times`
 * occurrences: the connection dropped (its socket destroyed, as a network cut does) after the
 * first write of an upload, or after a command matching `pattern` has run but before its exit
 * status is sent; and a full disk, where every SFTP write fails with ENOSPC.
 */
export interface SshFaults {
  dropDuringUpload(times?: number): void
  dropAfterCommand(pattern: RegExp, times?: number): void
  diskFull(full: boolean): void
  /** Connections dropped by a fault so far. */
  readonly dropped: number
}

interface FaultState {
  uploadDrops: number
  commandDrops: Array<{pattern: RegExp; times: number}>
  diskFull: boolean
  dropped: number
}

function serveSftp(sftp: SFTPWrapper, cwd: string, log: (line: string) => void, faults?: FaultState, drop?: () => void): void {
  const handles = new Map<number, Handle>()
  let next = 1
  const abs = (p: string) => resolvePath(cwd, p === '' ? '.' : p)
  const handleOf = (buf: Buffer): Handle | undefined => (buf.length === 4 ? handles.get(buf.readUInt32BE(0)) : undefined)
  const newHandle = (h: Handle): Buffer => {
    const id = next++
    handles.set(id, h)
    const buf = Buffer.alloc(4)
    buf.writeUInt32BE(id)
    return buf
  }
  const fail = (reqid: number, error: unknown) => sftp.status(reqid, statusFor(error), (error as Error).message)
  const ok = (reqid: number) => sftp.status(reqid, STATUS_CODE.OK)
  const applyAttrs = async (path: string, attrs: Attributes, fh?: FileHandle) => {
    if (attrs.size !== undefined) await (fh ? fh.truncate(attrs.size) : truncate(path, attrs.size))
    if (attrs.mode !== undefined) await (fh ? fh.chmod(attrs.mode & 0o7777) : chmod(path, attrs.mode & 0o7777))
    if (attrs.uid !== undefined && attrs.gid !== undefined) await (fh ? fh.chown(attrs.uid, attrs.gid) : chown(path, attrs.uid, attrs.gid))
    if (attrs.atime !== undefined && attrs.mtime !== undefined) await (fh ? fh.utimes(attrs.atime, attrs.mtime) : utimes(path, attrs.atime, attrs.mtime))
  }
  const run = (reqid: number, fn: () => Promise<void>) => {
    fn().catch((error) => fail(reqid, error))
  }

  sftp.on('OPEN', (reqid: number, filename: string, flags: number, attrs: Attributes) =>
    run(reqid, async () => {
      const mode = flags & utils.sftp.OPEN_MODE.CREAT && attrs.mode !== undefined ? attrs.mode & 0o7777 : 0o666
      const path = abs(filename)
      const fh = await open(path, utils.sftp.flagsToString(flags) ?? 'r', mode)
      log(`sftp open ${path} ${utils.sftp.flagsToString(flags)}`)
      sftp.handle(reqid, newHandle({kind: 'file', fh, path}))
    }),
  )
  sftp.on('READ', (reqid: number, handle: Buffer, offset: number, length: number) =>
    run(reqid, async () => {
      const h = handleOf(handle)
      if (h?.kind !== 'file') return sftp.status(reqid, STATUS_CODE.FAILURE, 'bad handle')
      const buf = Buffer.alloc(Math.min(length, 256 * 1024))
      const {bytesRead} = await h.fh.read(buf, 0, buf.length, offset)
      if (bytesRead === 0) sftp.status(reqid, STATUS_CODE.EOF)
      else sftp.data(reqid, buf.subarray(0, bytesRead))
    }),
  )
  sftp.on('WRITE', (reqid: number, handle: Buffer, offset: number, data: Buffer) =>
    run(reqid, async () => {
      const h = handleOf(handle)
      if (h?.kind !== 'file') return sftp.status(reqid, STATUS_CODE.FAILURE, 'bad handle')
      if (faults?.diskFull) throw Object.assign(new Error(`ENOSPC: no space left on device, write`), {code: 'ENOSPC'})
      await h.fh.write(data, 0, data.length, offset)
      if (faults && drop && faults.uploadDrops > 0) {
        faults.uploadDrops -= 1
        log(`fault: connection dropped during the upload to ${h.path}`)
        return drop()
      }
      ok(reqid)
    }),
  )
  sftp.on('CLOSE', (reqid: number, handle: Buffer) =>
    run(reqid, async () => {
      const h = handleOf(handle)
      if (!h) return sftp.status(reqid, STATUS_CODE.FAILURE, 'bad handle')
      handles.delete(handle.readUInt32BE(0))
      if (h.kind === 'file') await h.fh.close()
      ok(reqid)
    }),
  )
  sftp.on('FSTAT', (reqid: number, handle: Buffer) =>
    run(reqid, async () => {
      const h = handleOf(handle)
      if (h?.kind !== 'file') return sftp.status(reqid, STATUS_CODE.FAILURE, 'bad handle')
      sftp.attrs(reqid, toAttrs(await h.fh.stat()))
    }),
  )
  sftp.on('FSETSTAT', (reqid: number, handle: Buffer, attrs: Attributes) =>
    run(reqid, async () => {
      const h = handleOf(handle)
      if (h?.kind !== 'file') return sftp.status(reqid, STATUS_CODE.FAILURE, 'bad handle')
      await applyAttrs(h.path, attrs, h.fh)
      ok(reqid)
    }),
  )
  sftp.on('STAT', (reqid: number, path: string) => run(reqid, async () => sftp.attrs(reqid, toAttrs(await stat(abs(path))))))
  sftp.on('LSTAT', (reqid: number, path: string) => run(reqid, async () => sftp.attrs(reqid, toAttrs(await lstat(abs(path))))))
  sftp.on('SETSTAT', (reqid: number, path: string, attrs: Attributes) =>
    run(reqid, async () => {
      await applyAttrs(abs(path), attrs)
      ok(reqid)
    }),
  )
  sftp.on('OPENDIR', (reqid: number, path: string) =>
    run(reqid, async () => {
      const p = abs(path)
      if (!(await stat(p)).isDirectory()) return sftp.status(reqid, STATUS_CODE.FAILURE, 'not a directory')
      sftp.handle(reqid, newHandle({kind: 'dir', path: p, done: false}))
    }),
  )
  sftp.on('READDIR', (reqid: number, handle: Buffer) =>
    run(reqid, async () => {
      const h = handleOf(handle)
      if (h?.kind !== 'dir') return sftp.status(reqid, STATUS_CODE.FAILURE, 'bad handle')
      if (h.done) return sftp.status(reqid, STATUS_CODE.EOF)
      h.done = true
      const entries: FileEntry[] = []
      for (const name of ['.', '..', ...(await readdir(h.path))]) {
        const s = await lstat(join(h.path, name)).catch(() => undefined)
        if (s) entries.push({filename: name, longname: longname(name, s), attrs: toAttrs(s) as FileEntry['attrs']})
      }
      sftp.name(reqid, entries)
    }),
  )
  sftp.on('REMOVE', (reqid: number, path: string) =>
    run(reqid, async () => {
      await rm(abs(path))
      ok(reqid)
    }),
  )
  sftp.on('RMDIR', (reqid: number, path: string) =>
    run(reqid, async () => {
      await rmdir(abs(path))
      ok(reqid)
    }),
  )
  sftp.on('MKDIR', (reqid: number, path: string, attrs: Attributes) =>
    run(reqid, async () => {
      await mkdir(abs(path), {mode: attrs.mode === undefined ? 0o777 : attrs.mode & 0o7777})
      ok(reqid)
    }),
  )
  sftp.on('RENAME', (reqid: number, oldPath: string, newPath: string) =>
    run(reqid, async () => {
      // SFTPv3 RENAME does not replace (OpenSSH's sftp-server refuses an existing target too).
      if (existsSync(abs(newPath))) return sftp.status(reqid, STATUS_CODE.FAILURE, 'target exists')
      await rename(abs(oldPath), abs(newPath))
      ok(reqid)
    }),
  )
  sftp.on('REALPATH', (reqid: number, path: string) =>
    run(reqid, async () => {
      const p = await realpath(abs(path)).catch(() => abs(path))
      sftp.name(reqid, [{filename: p, longname: p, attrs: {} as FileEntry['attrs']}])
    }),
  )
  sftp.on('READLINK', (reqid: number, path: string) =>
    run(reqid, async () => {
      const target = await readlink(abs(path))
      sftp.name(reqid, [{filename: target, longname: target, attrs: {} as FileEntry['attrs']}])
    }),
  )
  sftp.on('SYMLINK', (reqid: number, linkPath: string, targetPath: string) =>
    run(reqid, async () => {
      await symlink(targetPath, abs(linkPath))
      ok(reqid)
    }),
  )
  sftp.on('EXTENDED', (reqid: number) => sftp.status(reqid, STATUS_CODE.OP_UNSUPPORTED))
  sftp.on('close', () => {
    for (const h of handles.values()) if (h.kind === 'file') h.fh.close().catch(() => {})
    handles.clear()
  })
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
  try {
    process.kill(-child.pid, signal)
  } catch {
    // already gone
  }
}

export async function startSshNode(options: InprocSshNodeOptions): Promise<SshNode> {
  const address = options.address ?? '127.0.0.1'
  assertLoopback(address)
  const me = userInfo()
  const user = options.user ?? me.username
  const home = join(options.dir, 'sshd')
  await mkdir(home, {recursive: true, mode: 0o700})
  const keyFile = join(home, 'inproc_host_ed25519_key')
  if (!existsSync(keyFile)) {
    // ssh2's generator now and then drops a leading zero byte of the public key; generate again.
    let pair = utils.generateKeyPairSync('ed25519', {comment: `homelab-sim-${options.name}`})
    for (let attempt = 0; attempt < 20 && utils.parseKey(pair.public) instanceof Error; attempt++) {
      pair = utils.generateKeyPairSync('ed25519', {comment: `homelab-sim-${options.name}`})
    }
    await writeFile(keyFile, pair.private, {mode: 0o600})
    await writeFile(`${keyFile}.pub`, `${pair.public}\n`)
  }
  const hostKey = await readFile(keyFile)
  const [keyType, keyB64] = (await readFile(`${keyFile}.pub`, 'utf8')).trim().split(/\s+/)
  const hostKeyLine = `${keyType} ${keyB64}`
  const allowed = (typeof options.authorizedKey === 'string' ? [options.authorizedKey] : options.authorizedKey).map(parseAuthorizedKey)
  const logFile = join(home, 'inproc.log')
  const log = (line: string) => {
    appendFile(logFile, `${new Date().toISOString()} ${line}\n`).catch(() => {})
  }

  const connections = new Set<Connection>()
  const faults: FaultState = {uploadDrops: 0, commandDrops: [], diskFull: false, dropped: 0}
  /** Cuts the connection under the client, as a network failure does (no SSH disconnect message). */
  const cut = (client: Connection) => {
    faults.dropped += 1
    const sock = (client as unknown as {_sock?: Socket})._sock
    if (sock) sock.destroy()
    else client.end()
  }
  const children = new Set<ChildProcess>()
  const sockets = new Set<Socket>()

  const server = new Server({hostKeys: [hostKey], ident: 'homelab-sim'}, (client, info) => {
    connections.add(client)
    log(`Connection from ${info.ip} port ${info.port}`)
    client.on('close', () => connections.delete(client))
    client.on('error', (e) => log(`connection error: ${e.message}`))
    client.on('authentication', (ctx) => {
      if (ctx.method !== 'publickey' || ctx.username !== user) return ctx.reject(['publickey'])
      const pk = ctx as PublicKeyAuthContext
      const key = allowed.find((k) => k.type === pk.key.algo.replace(/^rsa-sha2-(256|512)$/, 'ssh-rsa') && k.getPublicSSH().equals(pk.key.data))
      if (!key) return ctx.reject(['publickey'])
      // Without a signature the client only asks whether this key would do.
      if (!pk.signature) return ctx.accept()
      if (pk.blob && key.verify(pk.blob, pk.signature, pk.hashAlgo)) {
        log(`Accepted publickey for ${user}`)
        return ctx.accept()
      }
      ctx.reject(['publickey'])
    })
    client.on('tcpip', (accept, reject, req) => {
      const dest = req.destIP === 'localhost' ? '127.0.0.1' : req.destIP
      try {
        assertLoopback(dest)
      } catch {
        log(`direct-tcpip to ${req.destIP}:${req.destPort} refused (not loopback)`)
        return reject()
      }
      log(`direct-tcpip from ${req.srcIP}:${req.srcPort} to ${dest}:${req.destPort}`)
      const upstream = connect({host: dest, port: req.destPort})
      sockets.add(upstream)
      upstream.once('close', () => sockets.delete(upstream))
      upstream.once('error', () => reject())
      upstream.once('connect', () => {
        const channel = accept()
        channel.on('error', () => upstream.destroy())
        upstream.on('error', () => channel.destroy())
        channel.pipe(upstream).pipe(channel)
      })
    })
    client.on('session', (acceptSession) => {
      const session = acceptSession()
      let running: ChildProcess | undefined
      session.on('env', (accept) => accept?.()) // like sshd without AcceptEnv: accepted, ignored
      session.on('signal', (accept, _reject, sig) => {
        accept?.()
        if (running) killGroup(running, `SIG${sig.name}` as NodeJS.Signals)
      })
      session.on('sftp', (accept) => {
        log('subsystem request for sftp')
        serveSftp(accept(), options.dir, log, faults, () => cut(client))
      })
      session.on('exec', (accept, _reject, request) => {
        const channel: ServerChannel = accept()
        log(`exec ${JSON.stringify(request.command)}`)
        readNodeEnv(options.dir, options.env).then(
          (nodeEnv) => {
            const env = {
              HOME: me.homedir,
              USER: user,
              LOGNAME: user,
              SHELL: '/bin/sh',
              PATH: '/usr/local/bin:/usr/bin:/bin',
              ...nodeEnv,
            }
            const child = spawn('/bin/sh', ['-c', request.command], {cwd: options.dir, env, detached: true, stdio: 'pipe'})
            running = child
            children.add(child)
            child.stdout.pipe(channel, {end: false})
            child.stderr.pipe(channel.stderr, {end: false})
            channel.pipe(child.stdin)
            child.stdin.on('error', () => {}) // the command may exit without reading its input
            let done = false
            channel.on('close', () => {
              // A client that goes away stops what it started, so nothing is left behind.
              if (!done) {
                killGroup(child, 'SIGTERM')
                setTimeout(() => killGroup(child, 'SIGKILL'), 1000).unref()
              }
            })
            child.on('error', (e) => {
              done = true
              children.delete(child)
              channel.stderr.write(`sh: ${e.message}\n`)
              channel.exit(127)
              channel.end()
            })
            child.on('close', (code, signal) => {
              done = true
              children.delete(child)
              const fault = faults.commandDrops.find((f) => f.times > 0 && f.pattern.test(request.command))
              if (fault) {
                fault.times -= 1
                log(`fault: connection dropped after ${JSON.stringify(request.command)} ran (exit ${code ?? signal})`)
                return cut(client)
              }
              if (signal) channel.exit(signal.replace(/^SIG/, ''), false, '')
              else channel.exit(code ?? 0)
              channel.end()
            })
          },
          (error: Error) => {
            channel.stderr.write(`env file: ${error.message}\n`)
            channel.exit(1)
            channel.end()
          },
        )
      })
    })
  })

  let port = options.port ?? 0
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const net = server as unknown as NetServer
      net.once('error', reject)
      server.listen(port, address, () => {
        net.off('error', reject)
        port = (server.address() as {port: number}).port
        resolve()
      })
    })
  await listen()
  await waitForBanner(address, port, Date.now() + (options.startTimeoutMs ?? 10_000), () => undefined)

  const stop = async () => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    for (const c of connections) c.end()
    for (const s of sockets) s.destroy()
    for (const child of children) killGroup(child, 'SIGKILL')
    const deadline = Date.now() + 3000
    while ((children.size > 0 || connections.size > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    await within(closed, 3000)
    if (children.size > 0) throw new Error(`in-process SSH node ${options.name}: commands still running after stop`)
  }

  const hostForKnownHosts = port === 22 ? address : `[${address}]:${port}`
  return {
    name: options.name,
    host: address,
    get port() {
      return port
    },
    user,
    hostKeyLine,
    knownHostsLine: `${hostForKnownHosts} ${hostKeyLine}`,
    logFile,
    kind: 'inproc',
    faults: {
      dropDuringUpload(times = 1) {
        faults.uploadDrops = times
      },
      dropAfterCommand(pattern, times = 1) {
        faults.commandDrops.push({pattern, times})
      },
      diskFull(full) {
        faults.diskFull = full
      },
      get dropped() {
        return faults.dropped
      },
    } satisfies SshFaults,
    async restart() {
      await stop()
      await listen()
    },
    stop,
  }
}
