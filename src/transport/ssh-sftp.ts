import {constants as fsConstants, createReadStream} from 'node:fs'
import {access} from 'node:fs/promises'
import {Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import type {SFTPWrapper} from 'ssh2'
import {ConnectionError, HomelabError} from '../errors.js'
import {connectionLost, openChannel, type Connection} from './ssh-connection.js'
import {abortReason, type SshContext} from './ssh-context.js'
import type {PutFileOptions} from './types.js'

/** Run before anything is created on the node: a missing local file must not leave an empty remote one. */
export async function assertReadable(path: string): Promise<void> {
  await access(path, fsConstants.R_OK).catch((error: Error) => {
    throw new HomelabError(`cannot read ${path}: ${error.message}`, {cause: error, hint: 'check the local file exists and is readable'})
  })
}

/** Writes `source` to `remotePath` over the connection's one SFTP session, as the login user. */
export async function copyOverSftp(ctx: SshContext, conn: Connection, source: string | Buffer, remotePath: string, options: PutFileOptions): Promise<void> {
  const signal = options.signal
  const sftp = await openSftp(ctx.node, conn)
  const input = typeof source === 'string' ? createReadStream(source) : Readable.from([source])
  if (options.onProgress) {
    const report = options.onProgress
    let sent = 0
    input.on('data', (chunk: Buffer | string) => report((sent += chunk.length)))
  }
  const output = sftp.createWriteStream(remotePath, {flags: 'w', ...(options.mode === undefined ? {} : {mode: options.mode})})
  // A connection cut under a write leaves ssh2's SFTP requests unanswered for good, and an abort
  // waits on them too: the copy ends when the connection does, or the caller aborts.
  let stop: (error: Error) => void = () => {}
  const ended = new Promise<never>((_, reject) => (stop = reject))
  const onClose = () => stop(new Error('connection closed'))
  const onAbort = () => stop(new Error('aborted'))
  conn.client.once('close', onClose)
  signal?.addEventListener('abort', onAbort, {once: true})
  try {
    if (conn.closed) onClose()
    const copy = (async () => {
      await pipeline(input, output, {signal})
      // The server applies its umask at open; the caller asked for this exact mode.
      if (options.mode !== undefined) await new Promise<void>((resolve, reject) => sftp.chmod(remotePath, options.mode!, (e) => (e ? reject(e) : resolve())))
    })()
    copy.catch(() => {}) // settles late, or never, once `ended` won
    await Promise.race([copy, ended])
  } catch (error) {
    input.destroy()
    output.destroy()
    if (signal?.aborted) throw abortReason(signal, `copy to ${remotePath}`)
    if (conn.closed) throw connectionLost(ctx.node, conn, `copying to ${remotePath}`, error)
    throw sftpError(error, ctx.node, ctx.options.target.user, remotePath, typeof source === 'string' ? source : undefined)
  } finally {
    conn.client.off('close', onClose)
    signal?.removeEventListener('abort', onAbort)
    ended.catch(() => {})
  }
}

/** One SFTP session per connection, opened on first use and forgotten when it closes. */
function openSftp(node: string, conn: Connection): Promise<SFTPWrapper> {
  if (!conn.sftp) {
    const forget = () => {
      if (conn.sftp === opening) conn.sftp = undefined
    }
    const opening: Promise<SFTPWrapper> = openChannel<SFTPWrapper>(node, conn, (cb) => conn.client.sftp(cb), 'sftp', undefined, (sftp) =>
      sftp.on('close', forget),
    ).catch((error: HomelabError) => {
      forget()
      if (conn.closed) throw error
      throw new ConnectionError(`${node}: cannot start SFTP: ${(error.cause as Error | undefined)?.message ?? error.message}`, {
        cause: error,
        hint: `enable the sftp subsystem in sshd_config on ${node} (Subsystem sftp internal-sftp)`,
      })
    })
    conn.sftp = opening
  }
  return conn.sftp
}

function sftpError(error: unknown, node: string, user: string, remotePath: string, localPath?: string): HomelabError {
  const e = error as Error & {code?: number | string}
  if (localPath && (e.code === 'ENOENT' || e.code === 'EACCES')) {
    return new HomelabError(`cannot read ${localPath}: ${e.message}`, {cause: error, hint: 'check the local file exists and is readable'})
  }
  // SFTP status codes: 2 no such file, 3 permission denied.
  const reason = e.code === 2 ? 'no such directory' : e.code === 3 ? 'permission denied' : e.message
  const full = /no space left|ENOSPC|disk quota/i.test(e.message ?? '')
  return new HomelabError(`${node}: cannot write ${remotePath}: ${reason}`, {
    cause: error,
    hint: full
      ? `the disk of ${remotePath} on ${node} is full: free some space there (df -h), then run again`
      : e.code === 3
        ? `${user} cannot write there: copy to a directory ${user} owns, then move it into place with a privileged command`
        : `check that the directory of ${remotePath} exists on ${node}`,
  })
}
