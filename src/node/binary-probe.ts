/**
 * Everything pre-flight reads on a k3s or rke2 node, in one round trip (probe.ts): sudo, the bin
 * dir, the binary's version, sha256 and package owner, the architecture, the service manager,
 * free disk in the bin dir and /tmp, and on servers the `.skip` manifests. Each step runs the
 * same command the single-purpose function beside it runs (node-ops.ts, node-facts.ts), and its
 * answer is judged by the same parser, so messages and refusals are the same.
 */
import type {Arch, DistributionDescriptor, ServiceManager} from '../distributions/index.js'
import {CommandError, PreflightError} from '../errors.js'
import {normaliseArch} from '../release/release-source.js'
import type {Transport} from '../transport/types.js'
import {FREE_KB_NEAREST_SCRIPT, IMAGE_DIR_SCRIPT, parseImageDir, REGISTRIES_SCRIPT, type NodeImagesFacts} from '../airgap/node-images.js'
import {binaryPath, parseInstalledVersion} from './installed-version.js'
import {FIND_BIN_DIR_SCRIPT, PACKAGE_OWNER_SCRIPT, parsePackageOwner, parseSkippedManifests, SKIPPED_MANIFESTS_SCRIPT, type PackageOwner} from './node-facts.js'
import {configuredServiceManager, FREE_KB_SCRIPT, judgeServiceManager, parseFreeKilobytes, parseSha256, serviceManagerScript, SHA256_SCRIPT} from './node-ops.js'
import {probeProgram, runProbe, type Become} from './probe.js'

// Arguments after the marker and become: $1 binary name, $2 bin dir from homelab.yaml (empty: find
// it), $3 the dir to fall back on, $4 the service, $5 the manifests dir (empty on agents), $6 the
// service-manager script (empty when install.service names one), $7 the agent's image dir and $8
// the registries file (both empty when install.images is pull), then the installer's bin dirs.
// The reads that need root run first, all under one sudo (sudo is slow: PAM, the policy, a log
// line each): when it fails, its words are pre-flight's refusal, as `sudo -n -- true`'s were.
const BODY = `BIN=$1 EXPLICIT=$2 FALLBACK=$3 SERVICE=$4 MANIFESTS=$5 MANAGERS=$6 IMAGES=$7 REGISTRIES=$8; shift 8
if ! sec root priv sh -c "$AS_ROOT" homelab "$M" none "$MANIFESTS" "$IMAGES" "$REGISTRIES" && [ "$B" = sudo ]; then exit 0; fi
if [ -n "$EXPLICIT" ]; then D=$EXPLICIT; else D=$(snip "$FIND_BIN_DIR" "$BIN" "$@" 2>/dev/null); [ -n "$D" ] || D=$FALLBACK; fi
sec bindir printf '%s' "$D"
sec sha256 snip "$SHA256" "$D/$BIN"
sec version "$D/$BIN" --version
sec arch uname -m
if [ -n "$MANAGERS" ]; then sec service snip "$MANAGERS" "$SERVICE"; fi
sec free-bin snip "$FREE_KB" "$D"
sec free-tmp snip "$FREE_KB" /tmp
sec owner snip "$PACKAGE_OWNER" "$D/$BIN"
if [ -n "$IMAGES" ]; then sec free-images snip "$FREE_KB_NEAREST" "$IMAGES"; fi
`

// As root, with the outer marker: $1 the manifests dir, $2 the image dir, $3 the registries file (each empty: not read).
const AS_ROOT_BODY = `MANIFESTS=$1 IMAGES=$2 REGISTRIES=$3
if [ -n "$MANIFESTS" ]; then sec skip snip "$SKIPPED_MANIFESTS" "$MANIFESTS"; fi
if [ -n "$IMAGES" ]; then
  sec images snip "$IMAGE_DIR" "$IMAGES"
  sec registries snip "$REGISTRIES_CAT" "$REGISTRIES"
fi
exit 0
`

/** The part of the probe that runs as root (`sudo -n -- sh -c <this> homelab <marker> none …`). */
export const AS_ROOT_PROBE = probeProgram({SKIPPED_MANIFESTS: SKIPPED_MANIFESTS_SCRIPT, IMAGE_DIR: IMAGE_DIR_SCRIPT, REGISTRIES_CAT: REGISTRIES_SCRIPT}, AS_ROOT_BODY)

/** The probe program for binary distributions (fixed text; pinned by a golden test). */
export const BINARY_PROBE = probeProgram(
  {
    FIND_BIN_DIR: FIND_BIN_DIR_SCRIPT,
    SHA256: SHA256_SCRIPT,
    FREE_KB: FREE_KB_SCRIPT,
    PACKAGE_OWNER: PACKAGE_OWNER_SCRIPT,
    FREE_KB_NEAREST: FREE_KB_NEAREST_SCRIPT,
    AS_ROOT: AS_ROOT_PROBE,
  },
  BODY,
)

export interface BinaryNodeRequest {
  distribution: DistributionDescriptor
  become: Become
  sudoUser?: string
  /** install.binDir when homelab.yaml sets it; else the installer's dirs are searched. */
  binDir: string
  binDirExplicit: boolean
  service: string
  serviceSetting: 'auto' | ServiceManager
  /** Servers: where the packaged manifests are (their `.skip` files are listed). */
  manifestsDir?: string
  /** Where the node's images archives and registries.yaml are; unset when install.images is pull. */
  images?: {dir: string; registriesPath: string}
  signal?: AbortSignal
}

export interface BinaryNodeFacts {
  binDir: string
  binary: string
  sha256: string
  installedVersion: string
  arch: Arch
  serviceManager: ServiceManager
  freeBinKb: number
  freeTmpKb: number
  owner: PackageOwner | undefined
  skipManifests: string[] | undefined
  images: NodeImagesFacts | undefined
}

/**
 * The node's facts from one exec. Throws the error the first failing read would have thrown on
 * its own: sudo first, then no binary at the path (PreflightError), its version, the arch, the
 * service manager, disk, the package owner, the `.skip` files.
 */
export async function probeBinaryNode(transport: Transport, request: BinaryNodeRequest): Promise<BinaryNodeFacts> {
  const {distribution} = request
  const node = transport.node
  const configured = configuredServiceManager(node, distribution, request.serviceSetting)
  const probe = await runProbe(
    transport,
    BINARY_PROBE,
    [
      distribution.binary,
      request.binDirExplicit ? request.binDir : '',
      request.binDir,
      request.service,
      request.manifestsDir ?? '',
      configured ? '' : serviceManagerScript(distribution),
      request.images?.dir ?? '',
      request.images?.registriesPath ?? '',
      ...distribution.binDirs,
    ],
    {become: request.become, sudoUser: request.sudoUser, signal: request.signal, timeoutMs: 60_000},
  )
  probe.checkPrivilege(request.become, 'root', ['sh', '-c', '<pre-flight\'s reads as root>'])
  const binDir = probe.result('bindir').stdout
  if (!binDir.startsWith('/')) throw new CommandError(`${node}: the pre-flight probe found no bin dir (${JSON.stringify(binDir)})`, 0, '')
  const binary = binaryPath(distribution, binDir)
  const script = (text: string, ...args: string[]) => ['sh', '-c', text, 'homelab', ...args]
  const sha256 = parseSha256(probe.stdout('sha256', script(SHA256_SCRIPT, binary)))
  if (!sha256) {
    throw new PreflightError(`no ${distribution.binary} binary at ${binary}`, {hint: `set install.binDir (or the node's install.binDir) to where ${distribution.name} is installed`})
  }
  return {
    binDir,
    binary,
    sha256,
    installedVersion: parseInstalledVersion(node, distribution, binary, probe.stdout('version', [binary, '--version'])),
    arch: normaliseArch(probe.stdout('arch', ['uname', '-m'])),
    serviceManager: configured ?? judgeServiceManager(node, distribution, probe.stdout('service', script(serviceManagerScript(distribution), request.service))),
    freeBinKb: parseFreeKilobytes(node, binDir, probe.stdout('free-bin', script(FREE_KB_SCRIPT, binDir))),
    freeTmpKb: parseFreeKilobytes(node, '/tmp', probe.stdout('free-tmp', script(FREE_KB_SCRIPT, '/tmp'))),
    owner: parsePackageOwner(probe.stdout('owner', script(PACKAGE_OWNER_SCRIPT, binary))),
    skipManifests: request.manifestsDir === undefined ? undefined : parseSkippedManifests(probe.stdout('skip', script(SKIPPED_MANIFESTS_SCRIPT, request.manifestsDir), {privileged: true})),
    images: request.images && {
      dir: request.images.dir,
      entries: parseImageDir(probe.stdout('images', script(IMAGE_DIR_SCRIPT, request.images.dir), {privileged: true})),
      freeKb: parseFreeKilobytes(node, request.images.dir, probe.stdout('free-images', script(FREE_KB_NEAREST_SCRIPT, request.images.dir))),
      registriesPath: request.images.registriesPath,
      registriesYaml: probe.stdout('registries', script(REGISTRIES_SCRIPT, request.images.registriesPath), {privileged: true}) || undefined,
    },
  }
}
