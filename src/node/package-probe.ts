/**
 * Everything kubeadm's pre-flight reads on a node, in one round trip (probe.ts): sudo, the
 * architecture, apt or dnf, the installed and held packages, the repository definition (found
 * and read), swap, free disk in the bin dir and the package cache, on control planes admin.conf,
 * the etcd manifest, etcdctl and crictl, and which versions the repository offers once switched
 * to the target's minor. Each step runs the command the function in packages.ts runs for it and
 * is judged by the same parser. The minor switch the node did for that last query is checked
 * against switchRepositoryMinor's; where they differ, the query is asked again on its own.
 */
import type {PackageDistribution} from '../distributions/index.js'
import {CommandError} from '../errors.js'
import {normaliseArch} from '../release/release-source.js'
import type {Transport} from '../transport/types.js'
import {FREE_KB_SCRIPT, parseFreeKilobytes} from './node-ops.js'
import {
  APT_SOURCE_DIR_ARGV,
  DETECT_PACKAGE_MANAGER_SCRIPT,
  DNF_REPOLIST_ARGV,
  FIND_APT_SOURCE_SCRIPT,
  INSTALLED_VERSIONS_SCRIPT,
  judgePackageManager,
  noRepositoryFile,
  OFFERED_VERSIONS_SCRIPT,
  offeredVersions,
  parseAptSourceDir,
  parseDnfRepositoryFile,
  parseHeldPackages,
  parseInstalledVersions,
  parseOfferedVersions,
  unreadableRepository,
  type PackageManagerName,
} from './packages.js'
import {probeProgram, runProbe, type Become} from './probe.js'

/** Prints `admin`, `etcd`, `etcdctl`, `crictl` for what a control plane has (`$1` admin.conf, `$2` etcd's manifest). */
export const CONTROL_PLANE_FACTS_SCRIPT = '[ -f "$1" ] && echo admin; [ -f "$2" ] && echo etcd; command -v etcdctl >/dev/null 2>&1 && echo etcdctl; command -v crictl >/dev/null 2>&1 && echo crictl; true'
export const SWAP_SCRIPT = 'swapon --show --noheadings 2>/dev/null || true'

// Arguments after the marker and become: $1 the upgrader package, $2 the packages (one a line),
// $3 install.repositoryFile (or empty), $4 the usual repository file names for apt (one a line),
// $5 the bin dir, $6 the package cache, $7 the target's minor (1.32), $8 admin.conf and $9 etcd's
// manifest (empty on workers). `keep` is `sec` that also leaves the step's stdout in $K.
const BODY = `UP=$1 PKGS=$2 EXPLICIT=$3 APT_NAMES=$4 BINDIR=$5 CACHE=$6 TO=$7 ADMIN=$8 ETCD=$9
keep() { r=$(exec 3>&1; sec "$@"); s=$?; printf '%s\\n' "$r"; K=\${r#*"$M out $1$NL"}; K=\${K%"$NL$M exit $1 "*}; return $s; }
if [ "$B" = sudo ]; then sec sudo priv true || exit 0; fi
sec arch uname -m
keep manager snip "$DETECT_PM"
PM=$(printf '%s' "$K" | tr -d '[:space:]')
case $PM in apt) INSTALLED=$APT_INSTALLED ;; dnf) INSTALLED=$DNF_INSTALLED ;; *) INSTALLED= ;; esac
if [ -n "$INSTALLED" ]; then
  set -f; IFS=$NL
  keep installed snip "$INSTALLED" $PKGS
  set +f; unset IFS
  KV=$(printf '%s\\n' "$K" | awk -F '\\t' -v p="$UP" '$1 == p { print $2 }')
fi
[ "$PM" = apt ] && sec held apt-mark showhold
F=
if [ -n "$EXPLICIT" ]; then F=$EXPLICIT
elif [ "$PM" = apt ]; then
  keep apt-config apt-config shell D Dir::Etc::sourceparts/d
  d=$(printf '%s\\n' "$K" | sed -n "s/^[^']*'\\\\(.*\\\\)'.*$/\\\\1/p" | sed 's#/*$##')
  if [ -n "$d" ]; then
    set -f; IFS=$NL
    keep apt-source sh -c "$FIND_APT_SOURCE" homelab "$d" $APT_NAMES
    set +f; unset IFS
    F=$(printf '%s\\n' "$K" | sed -n 1p)
  fi
elif [ "$PM" = dnf ]; then
  keep repolist dnf -v repolist --enabled
  F=$(printf '%s\\n' "$K" | awk '
    function pick() { if (f != "" && b ~ /\\/v[0-9]+\\.[0-9]+\\//) { print f; exit } }
    /^Repo-id[ \\t]*:/ { pick(); b = ""; f = "" }
    /^Repo-baseurl[ \\t]*:/ { sub(/^Repo-baseurl[ \\t]*:[ \\t]*/, ""); b = $1 }
    /^Repo-filename[ \\t]*:/ { sub(/^Repo-filename[ \\t]*:[ \\t]*/, ""); f = $1 }
    END { pick() }')
fi
sec swap snip "$SWAP"
sec free-bin snip "$FREE_KB" "$BINDIR"
sec free-cache snip "$FREE_KB" "$CACHE"
if [ -n "$ADMIN" ]; then sec control-plane priv sh -c "$CONTROL_PLANE_FACTS" homelab "$ADMIN" "$ETCD"; fi
[ -n "$F" ] || exit 0
keep repository priv cat "$F" || exit 0
TEXT=$K
FROM=$(printf '%s\\n' "$KV" | sed -n 's/^v\\{0,1\\}\\([0-9][0-9]*\\.[0-9][0-9]*\\).*/\\1/p')
[ -n "$FROM" ] || exit 0
if [ "$FROM" = "$TO" ]; then AFTER=$TEXT
else
  RE=$(printf '%s' "$FROM" | sed 's/\\./\\\\./g')
  printf '%s' "$TEXT" | grep -q "/v$RE/" || exit 0
  AFTER=$(printf '%s' "$TEXT" | sed "s#/v$RE/#/v$TO/#g"; printf .); AFTER=\${AFTER%.}
fi
case $PM in apt) OFFERED=$APT_OFFERED ;; dnf) OFFERED=$DNF_OFFERED ;; esac
sec switched printf '%s' "$AFTER"
sec offered sh -c "$OFFERED" homelab "$AFTER" "\${F##*/}" "$UP"
`

/** The probe program for package distributions (fixed text; pinned by a golden test). */
export const PACKAGE_PROBE = probeProgram(
  {
    DETECT_PM: DETECT_PACKAGE_MANAGER_SCRIPT,
    APT_INSTALLED: INSTALLED_VERSIONS_SCRIPT.apt,
    DNF_INSTALLED: INSTALLED_VERSIONS_SCRIPT.dnf,
    FIND_APT_SOURCE: FIND_APT_SOURCE_SCRIPT,
    SWAP: SWAP_SCRIPT,
    FREE_KB: FREE_KB_SCRIPT,
    CONTROL_PLANE_FACTS: CONTROL_PLANE_FACTS_SCRIPT,
    APT_OFFERED: OFFERED_VERSIONS_SCRIPT.apt,
    DNF_OFFERED: OFFERED_VERSIONS_SCRIPT.dnf,
  },
  BODY,
)

export interface PackageNodeRequest {
  distribution: PackageDistribution
  become: Become
  sudoUser?: string
  binDir: string
  packageCache: string
  repositoryNames: {apt: readonly string[]; dnf: readonly string[]}
  /** install.repositoryFile, when homelab.yaml names it. */
  repositoryFile?: string
  /** `1.32`: the minor the repository is switched to for the offered-versions query. */
  targetMinor: string
  /** Control planes: admin.conf and etcd's static pod manifest. */
  controlPlane?: {adminConf: string; etcdManifest: string}
  signal?: AbortSignal
}

/** The probe's answers, each read only when asked, so the refusals come in pre-flight's order. */
export interface PackageNodeProbe {
  arch(): ReturnType<typeof normaliseArch>
  manager(): PackageManagerName
  installed(packages: readonly string[]): Record<string, string | undefined>
  held(): string[]
  repositoryFile(): string
  swap(): string
  freeKb(which: 'bin' | 'cache'): number
  controlPlaneFacts(): string
  repositoryText(file: string): string
  /** What the repository as `after` offers of `pkg`: the node's own answer when it switched the same way, else asked again. */
  offered(after: string, file: string, pkg: string): Promise<string[]>
}

export async function probePackageNode(transport: Transport, request: PackageNodeRequest): Promise<PackageNodeProbe> {
  const {distribution, signal} = request
  const node = transport.node
  const packages = [distribution.upgrader, ...distribution.nodePackages]
  const probe = await runProbe(
    transport,
    PACKAGE_PROBE,
    [
      distribution.upgrader,
      packages.join('\n'),
      request.repositoryFile ?? '',
      request.repositoryNames.apt.join('\n'),
      request.binDir,
      request.packageCache,
      request.targetMinor,
      request.controlPlane?.adminConf ?? '',
      request.controlPlane?.etcdManifest ?? '',
    ],
    // The offered-versions query downloads the repository's index: as long as it may take on its own.
    {become: request.become, sudoUser: request.sudoUser, signal, timeoutMs: 180_000},
  )
  probe.checkPrivilege(request.become)
  const script = (text: string, ...args: string[]) => ['sh', '-c', text, 'homelab', ...args]
  const manager = () => judgePackageManager(node, probe.stdout('manager', script(DETECT_PACKAGE_MANAGER_SCRIPT)))
  return {
    arch: () => normaliseArch(probe.stdout('arch', ['uname', '-m'])),
    manager,
    installed: (names) => parseInstalledVersions(names, probe.stdout('installed', script(INSTALLED_VERSIONS_SCRIPT[manager()], ...names))),
    held: () => (manager() === 'apt' ? parseHeldPackages(probe.stdout('held', ['apt-mark', 'showhold'])) : []),
    repositoryFile: () => {
      if (request.repositoryFile) return request.repositoryFile
      const pm = manager()
      if (pm === 'apt') {
        const dir = parseAptSourceDir(probe.stdout('apt-config', APT_SOURCE_DIR_ARGV))
        const found = dir ? probe.stdout('apt-source', script(FIND_APT_SOURCE_SCRIPT, dir, ...request.repositoryNames.apt)).trim() : ''
        if (found) return found
      } else {
        const file = parseDnfRepositoryFile(probe.stdout('repolist', DNF_REPOLIST_ARGV))
        if (file) return file
      }
      throw noRepositoryFile(node, pm)
    },
    swap: () => probe.stdout('swap', script(SWAP_SCRIPT)),
    freeKb: (which) => {
      const dir = which === 'bin' ? request.binDir : request.packageCache
      return parseFreeKilobytes(node, dir, probe.stdout(`free-${which}`, script(FREE_KB_SCRIPT, dir)))
    },
    controlPlaneFacts: () => (request.controlPlane ? probe.stdout('control-plane', script(CONTROL_PLANE_FACTS_SCRIPT, request.controlPlane.adminConf, request.controlPlane.etcdManifest), {privileged: true}) : ''),
    repositoryText: (file) => probe.stdout('repository', ['cat', file], {privileged: true}),
    offered: async (after, file, pkg) => {
      const switched = probe.has('switched') ? probe.result('switched').stdout : undefined
      if (switched === undefined || switched !== after || pkg !== distribution.upgrader || !probe.has('offered')) {
        return offeredVersions(transport, manager(), after, file, pkg, {signal})
      }
      const result = probe.result('offered')
      if (result.exitCode !== 0) throw unreadableRepository(node, file, new CommandError('', result.exitCode, result.stderr))
      return parseOfferedVersions(manager(), pkg, result.stdout)
    },
  }
}
