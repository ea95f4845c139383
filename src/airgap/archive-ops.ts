/**
 * The images archives on a node, beside the binary: staged as a hidden file in the agent's image
 * dir (k3s and rke2 import only files ending in an archive extension, so neither the staged copy
 * nor the kept old one is imported), put in place with renames just before the binary swap, the
 * old one kept until the run is verified, and put back by the compensation.
 */
import {randomBytes} from 'node:crypto'
import path from 'node:path'

import {CommandError, HomelabError} from '../errors.js'
import {script} from '../node/node-ops.js'
import type {Transport} from '../transport/types.js'

export function stagedArchivePath(dir: string, file: string): string {
  return path.posix.join(dir, `.${file}.homelab-new`)
}

/** The archive the node held before the run, kept (not imported) until the run is verified. */
export function previousArchivePath(dir: string, file: string): string {
  return path.posix.join(dir, `.${file}.homelab-prev`)
}

// $1 live, $2 staged, $3 the new archive's size: the sha256 of each file that has that size
// (hashing hundreds of MiB only when it can be the new archive), `-` otherwise.
const ARCHIVE_STATE_SCRIPT = `for f in "$1" "$2"; do
  if [ -f "$f" ] && [ "$(ls -ln -- "$f" | awk '{print $5}')" = "$3" ]; then sha256sum "$f" | cut -d" " -f1; else echo -; fi
done`

/** Whether the live or the staged file already is the new archive (a resumed run finds its own work). */
export async function archiveState(transport: Transport, dir: string, archive: {file: string; size: number}, signal?: AbortSignal): Promise<{liveSha?: string; stagedSha?: string}> {
  const out = await script(transport, ARCHIVE_STATE_SCRIPT, [path.posix.join(dir, archive.file), stagedArchivePath(dir, archive.file), String(archive.size)], {privileged: true, signal, timeoutMs: 600_000})
  const [live, staged] = out.split('\n').map((line) => (/^[0-9a-f]{64}$/.test(line.trim()) ? line.trim() : undefined))
  return {liveSha: live, stagedSha: staged}
}

/**
 * Pushes the verified archive from the CLI's cache to /tmp over SFTP (as the login user), checks
 * its sha256 there, and moves it to the staged name in the image dir (as root).
 */
export async function stageArchive(
  transport: Transport,
  options: {dir: string; file: string; sha256: string; localPath: string; onProgress?: (sent: number) => void; signal?: AbortSignal},
): Promise<string> {
  const {dir, file, sha256, signal} = options
  const staged = stagedArchivePath(dir, file)
  const upload = `/tmp/.homelab-${file}-${transport.node}-${randomBytes(6).toString('hex')}`
  await transport.putFile(options.localPath, upload, {mode: 0o644, signal, onProgress: options.onProgress})
  await script(
    transport,
    'set -e; actual=$(sha256sum "$1" | cut -d" " -f1); if [ "$actual" != "$2" ]; then echo "sha256 does not match: got $actual, expected $2" >&2; rm -f "$1"; exit 3; fi; mkdir -p "$3"; mv -f "$1" "$4.tmp"; chmod 0644 "$4.tmp"; mv -f "$4.tmp" "$4"',
    [upload, sha256, dir, staged],
    {privileged: true, signal, timeoutMs: 600_000},
  ).catch(async (error: unknown) => {
    await script(transport, 'rm -f "$1"', [upload], {privileged: true}).catch(() => {})
    if (error instanceof CommandError && error.exitStatus === 3) {
      throw new HomelabError(`${transport.node}: the copied ${file} sha256 does not match (${error.stderr.trim()})`, {
        cause: error,
        hint: 'the copy was damaged on the way; nothing was swapped. Run again',
      })
    }
    throw error
  })
  return staged
}

/**
 * Each staged archive takes its live name; the archive that had that name is kept aside (once:
 * a retried placement keeps the first, which is the node's original). Renames within one dir,
 * so containerd never sees a half-written archive.
 */
export async function placeArchives(transport: Transport, dir: string, files: readonly string[], signal?: AbortSignal): Promise<void> {
  await script(
    transport,
    'set -e; d=$1; shift; for f in "$@"; do if [ -f "$d/.$f.homelab-new" ]; then if [ -f "$d/$f" ] && [ ! -f "$d/.$f.homelab-prev" ]; then mv -f "$d/$f" "$d/.$f.homelab-prev"; fi; mv -f "$d/.$f.homelab-new" "$d/$f"; fi; done',
    [dir, ...files],
    {privileged: true, signal},
  )
}

/** The run is verified (every node at the target, every system pod running): the old archives are not needed. */
export async function removePreviousArchives(transport: Transport, dir: string, files: readonly string[], signal?: AbortSignal): Promise<void> {
  await script(transport, 'd=$1; shift; for f in "$@"; do rm -f "$d/.$f.homelab-prev"; done', [dir, ...files], {privileged: true, signal})
}

/**
 * Puts the node's archives back as they were: the kept old one over the new, and a new one the
 * node did not have before removed. Without a kept file the live one is hashed: only the new
 * archive is touched (the run may have failed before it was put in place). Returns the files
 * whose old archive is gone (a run stopped while retiring them), which the caller must bring
 * back from the release.
 */
export async function restoreArchives(transport: Transport, dir: string, archives: ReadonlyArray<{file: string; hadPrevious: boolean; sha256: string}>, signal?: AbortSignal): Promise<string[]> {
  const out = await script(
    transport,
    'd=$1; shift; while [ $# -gt 2 ]; do f=$1 had=$2 new=$3; shift 3; rm -f "$d/.$f.homelab-new"; if [ -f "$d/.$f.homelab-prev" ]; then mv -f "$d/.$f.homelab-prev" "$d/$f"; elif [ -f "$d/$f" ] && [ "$(sha256sum "$d/$f" | cut -d" " -f1)" = "$new" ]; then if [ "$had" = yes ]; then echo "$f"; else rm -f "$d/$f"; fi; fi; done',
    [dir, ...archives.flatMap((a) => [a.file, a.hadPrevious ? 'yes' : 'no', a.sha256])],
    {privileged: true, signal, timeoutMs: 600_000},
  )
  return out.split('\n').map((line) => line.trim()).filter(Boolean)
}

/** Removes staged archives never put in place (a failed or cancelled run). */
export async function discardStagedArchives(transport: Transport, dir: string, files: readonly string[], signal?: AbortSignal): Promise<void> {
  await script(transport, 'd=$1; shift; for f in "$@"; do rm -f "$d/.$f.homelab-new" "$d/.$f.homelab-new.tmp"; done', [dir, ...files], {privileged: true, signal})
}

/** A staged archive brought back from the release replaces the live one outright (nothing to keep aside). */
export async function installStagedArchive(transport: Transport, dir: string, file: string, signal?: AbortSignal): Promise<void> {
  await script(transport, 'set -e; mv -f "$1/.$2.homelab-new" "$1/$2"; rm -f "$1/.$2.homelab-prev"', [dir, file], {privileged: true, signal})
}
