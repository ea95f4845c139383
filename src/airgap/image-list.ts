/**
 * The image lists a release publishes (`k3s-images.txt`, `rke2-images-all.linux-<arch>.txt`):
 * one image reference per line. Each is normalised as docker and containerd name images, so the
 * registry an image comes from (and so the mirror a node asks) is the one containerd picks.
 */
import {PreflightError} from '../errors.js'

export interface ImageRef {
  /** `docker.io`, `registry.k8s.io`, `registry.example.com:5000`. */
  registry: string
  /** `rancher/mirrored-pause`; a docker.io name without a slash gets `library/`. */
  repository: string
  tag?: string
  /** `sha256:<hex>` when the reference pins one. */
  digest?: string
  /** What goes after `/manifests/`: the digest when there is one (containerd pulls by it), else the tag. */
  reference: string
  /** The full normalised name, `docker.io/rancher/mirrored-pause:3.6` (tag and digest when both). */
  name: string
}

// The grammar of the distribution spec and docker's reference package, anchored.
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/
const TAG = /^\w[\w.-]{0,127}$/
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-f0-9]{32,}$/
const HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::\d{1,5})?$/

/** One reference, or a description of why it is not one. */
export function parseImageRef(text: string): ImageRef | string {
  const written = text.trim()
  let rest = written
  let digest: string | undefined
  const at = rest.indexOf('@')
  if (at >= 0) {
    digest = rest.slice(at + 1)
    rest = rest.slice(0, at)
    if (!DIGEST.test(digest)) return `"${digest}" is not a digest (algorithm:hex)`
  }
  let tag: string | undefined
  const colon = rest.lastIndexOf(':')
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1)
    rest = rest.slice(0, colon)
    if (!TAG.test(tag)) return `"${tag}" is not a tag`
  }
  const parts = rest.split('/')
  // As docker: the first part names a registry only if it has a dot or a port, or is localhost.
  const first = parts[0]!
  let registry = 'docker.io'
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    if (!HOST.test(first)) return `"${first}" is not a registry host`
    registry = first === 'index.docker.io' ? 'docker.io' : first
    parts.shift()
  }
  if (registry === 'docker.io' && parts.length === 1) parts.unshift('library')
  const bad = parts.find((p) => !COMPONENT.test(p))
  if (bad !== undefined) return bad === '' ? 'empty name' : `"${bad}" is not a repository name part (lower case letters, digits, and . _ - between them)`
  const repository = parts.join('/')
  if (!tag && !digest) tag = 'latest'
  return {registry, repository, tag, digest, reference: digest ?? tag!, name: `${registry}/${repository}${tag ? `:${tag}` : ''}${digest ? `@${digest}` : ''}`}
}

/**
 * Every image of a list, in its order, each once; blank lines and `#` comments are skipped. A line
 * that is not an image reference is a PreflightError naming `source` and the line: a list the
 * check cannot read would otherwise pass with images unchecked.
 */
export function parseImageList(text: string, source = 'the image list'): ImageRef[] {
  const images = new Map<string, ImageRef>()
  text.split('\n').forEach((line, i) => {
    const trimmed = line.trim()
    if (trimmed === '' || trimmed.startsWith('#')) return
    const image = parseImageRef(trimmed)
    if (typeof image === 'string') {
      throw new PreflightError(`${source}, line ${i + 1}: "${trimmed}" is not an image reference: ${image}`, {
        hint: 'use the image list published with the release (k3s-images.txt, rke2-images-all.linux-<arch>.txt), unedited',
      })
    }
    if (!images.has(image.name)) images.set(image.name, image)
  })
  return [...images.values()]
}
