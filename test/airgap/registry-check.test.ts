import assert from 'node:assert/strict'
import {after, before, describe, test} from 'node:test'

import {parseImageList} from '../../src/airgap/image-list.js'
import {checkRegistryImages, MirrorUnreachableError, MissingImagesError, registryCheckError, type RegistryCheckNode} from '../../src/airgap/registry-check.js'
import {mirrorFor, parseRegistriesYaml, rewriteRepository} from '../../src/airgap/registries-yaml.js'
import {ExitCode, PreflightError} from '../../src/errors.js'
import {OCI_INDEX, startRegistryServer, type RegistryServer} from '../sim/registry-server.js'

const PATH = '/etc/rancher/k3s/registries.yaml'
const CA_PATH = '/etc/rancher/k3s/mirror-ca.pem'
const PASSWORD = 's3cret-Pa55'

// A slice of a real k3s-images.txt (v1.31), in its format.
const IMAGES_TXT = `docker.io/rancher/klipper-helm:v0.9.3-build20241008
docker.io/rancher/klipper-lb:v0.4.9

docker.io/rancher/local-path-provisioner:v0.0.30
docker.io/rancher/mirrored-coredns-coredns:1.11.3
docker.io/rancher/mirrored-pause:3.6
`
const IMAGES = parseImageList(IMAGES_TXT, 'k3s-images.txt')
/** As the mirror holds them after `skopeo copy`: the name without the registry. */
const HELD = IMAGES.map((i) => `${i.repository}:${i.tag}`)

function mirrorYaml(server: RegistryServer, extra = ''): string {
  return `mirrors:\n  docker.io:\n    endpoint:\n      - "${server.url}"\n${extra}`
}

function nodes(names: string[], yaml: string | undefined): RegistryCheckNode[] {
  return names.map((node) => ({node, registriesYaml: yaml, registriesPath: PATH}))
}

const noFiles = async (node: string, path: string): Promise<string> => {
  throw new Error(`unexpected read of ${path} on ${node}`)
}

describe('registries.yaml', () => {
  test('reads mirrors, rewrites and configs as k3s documents them; empty keys mean not set', () => {
    const config = parseRegistriesYaml(
      `mirrors:
  docker.io:
    endpoint:
      - "https://registry.example.com:5000"
    rewrite:
      "^rancher/(.*)": "mirrorproject/rancher-images/$1"
  "*":
    endpoint: ["https://catch-all.example.com"]
configs:
  "registry.example.com:5000":
    auth:
      username: admin
      password: 0123
    tls:
      ca_file: /etc/ssl/mirror.pem
      cert_file:
      insecure_skip_verify: no
  docker.io:
`,
      `n1:${PATH}`,
    )
    assert.deepEqual(config.mirrors['docker.io'], {endpoints: ['https://registry.example.com:5000'], rewrite: [{pattern: '^rancher/(.*)', replacement: 'mirrorproject/rancher-images/$1'}]})
    // A password of digits stays the text k3s reads, not the number 123.
    assert.deepEqual(config.configs['registry.example.com:5000'], {
      auth: {username: 'admin', password: '0123', auth: undefined, identityToken: undefined},
      tls: {caFile: '/etc/ssl/mirror.pem', certFile: undefined, keyFile: undefined, insecureSkipVerify: false},
    })
    assert.deepEqual(config.ignoredKeys, [])
  })

  test('keys k3s does not read are dropped and named, so a typo can be warned about', () => {
    const config = parseRegistriesYaml('mirrors:\n  docker.io:\n    endpoints: ["https://m.example.com"]\n', 'f')
    assert.deepEqual(config.ignoredKeys, ['mirrors.docker.io.endpoints'])
    assert.deepEqual(config.mirrors['docker.io'], {endpoints: [], rewrite: []})
    assert.equal(mirrorFor(config, 'docker.io'), undefined, 'a mirror without endpoints is no mirror')
  })

  test('a malformed file is one line naming the file and the problem, never quoting the file', () => {
    const cases: Array<[string, RegExp]> = [
      [`configs:\n  m:\n    auth: {username: u, password: ${PASSWORD}\n`, /^n1:\/etc\/rancher\/k3s\/registries\.yaml is not a valid registries\.yaml: .*line \d+/],
      ['mirrors:\n  docker.io:\n    endpoint: https://m.example.com\n', /: mirrors\.docker\.io\.endpoint: .*expected array/],
      ['mirrors:\n  docker.io:\n    endpoint: [a]\n    rewrite:\n      "(": x\n', /mirrors\.docker\.io\.rewrite: "\(" is not a regular expression/],
      ['configs:\n  m:\n    tls:\n      insecure_skip_verify: maybe\n', /configs\.m\.tls\.insecure_skip_verify: must be true or false, got "maybe"/],
      ['- just\n- a list\n', /the top level must be a mapping/],
    ]
    for (const [yaml, expected] of cases) {
      assert.throws(
        () => parseRegistriesYaml(yaml, `n1:${PATH}`),
        (error: unknown) => {
          assert.ok(error instanceof PreflightError)
          assert.equal(error.exitCode, ExitCode.preflightRefused)
          assert.match(error.message, expected)
          assert.ok(!error.message.includes('\n'), `one line: ${error.message}`)
          assert.ok(!error.message.includes(PASSWORD), 'the password is not quoted')
          assert.ok(error.hint)
          return true
        },
      )
    }
  })

  test('mirrorFor: the exact host before "*", then the default endpoint last unless disabled', () => {
    const config = parseRegistriesYaml(
      `mirrors:
  docker.io:
    endpoint: ["registry.example.com:5000", "localhost:5001", "https://harbor.example.com/v2/proxy-docker/"]
  "*":
    endpoint: ["https://all.example.com"]
  quay.io:
    endpoint: ["https://mirror.example.com", "https://quay.io"]
configs:
  "registry.example.com:5000": {auth: {username: u, password: p}}
  "*": {auth: {username: wild, password: card}}
`,
      'f',
    )
    const docker = mirrorFor(config, 'docker.io')!
    assert.equal(docker.key, 'docker.io')
    assert.deepEqual(
      docker.endpoints.map((e) => [e.url, e.isDefault]),
      [
        ['https://registry.example.com:5000/v2', false],
        ['http://localhost:5001/v2', false], // localhost on an odd port without a scheme: http, as containerd
        ['https://harbor.example.com/v2/proxy-docker', false], // a path other than /v2 is used as written
        ['https://registry-1.docker.io/v2', true],
      ],
    )
    assert.equal(docker.endpoints[0]!.config.auth?.username, 'u')
    assert.deepEqual(docker.endpoints[1]!.config, {}, 'the "*" config is not applied to a mirror endpoint (k3s does not)')
    assert.equal(mirrorFor(config, 'ghcr.io')!.key, '*')
    // The registry itself listed last is its default endpoint, not a mirror.
    assert.deepEqual(
      mirrorFor(config, 'quay.io')!.endpoints.map((e) => [e.url, e.isDefault]),
      [
        ['https://mirror.example.com/v2', false],
        ['https://quay.io/v2', true],
      ],
    )
    assert.deepEqual(
      mirrorFor(config, 'docker.io', {disableDefaultEndpoint: true})!.endpoints.map((e) => e.isDefault),
      [false, false, false],
    )
    assert.equal(mirrorFor(parseRegistriesYaml('mirrors:\n  docker.io:\n    endpoint: [a.example.com]\n', 'f'), 'registry.k8s.io'), undefined)
  })

  test('rewrites change the name, never the tag, with Go replacement syntax', () => {
    const rules = [
      {pattern: '^rancher/(.*)', replacement: 'mirrorproject/rancher-images/$1'},
      {pattern: '^library/(?<name>.*)', replacement: 'hub/${name}-${1}'},
    ]
    assert.equal(rewriteRepository(rules, 'rancher/mirrored-pause'), 'mirrorproject/rancher-images/mirrored-pause')
    assert.equal(rewriteRepository(rules, 'library/busybox'), 'hub/busybox-busybox')
    assert.equal(rewriteRepository(rules, 'other/thing'), 'other/thing')
  })
})

describe('image lists', () => {
  test('k3s-images.txt: one image a line, blank lines skipped, docker normalisation', () => {
    assert.deepEqual(
      IMAGES.map((i) => i.name),
      [
        'docker.io/rancher/klipper-helm:v0.9.3-build20241008',
        'docker.io/rancher/klipper-lb:v0.4.9',
        'docker.io/rancher/local-path-provisioner:v0.0.30',
        'docker.io/rancher/mirrored-coredns-coredns:1.11.3',
        'docker.io/rancher/mirrored-pause:3.6',
      ],
    )
    const digest = `sha256:${'ab'.repeat(32)}`
    const [busybox, pause, localhost, pinned, both] = parseImageList(`busybox\r\nregistry.k8s.io/pause:3.9\nlocalhost:5000/team/app:1\nquay.io/x/y@${digest}\nnginx:1.27@${digest}\n# comment\n`)
    assert.deepEqual(busybox, {registry: 'docker.io', repository: 'library/busybox', tag: 'latest', digest: undefined, reference: 'latest', name: 'docker.io/library/busybox:latest'})
    assert.deepEqual([pause!.registry, pause!.repository, pause!.reference], ['registry.k8s.io', 'pause', '3.9'])
    assert.deepEqual([localhost!.registry, localhost!.repository], ['localhost:5000', 'team/app'])
    assert.deepEqual([pinned!.registry, pinned!.repository, pinned!.tag, pinned!.reference], ['quay.io', 'x/y', undefined, digest])
    assert.deepEqual([both!.repository, both!.tag, both!.reference], ['library/nginx', '1.27', digest], 'a digest wins over the tag, as containerd pulls by it')
  })

  test('a line that is not an image reference names the list and the line', () => {
    assert.throws(() => parseImageList('docker.io/rancher/ok:1\n\ndocker.io/Rancher/Bad:1\n', 'rke2-images-all.linux-amd64.txt'), (error: unknown) => {
      assert.ok(error instanceof PreflightError)
      assert.match(error.message, /^rke2-images-all\.linux-amd64\.txt, line 3: "docker\.io\/Rancher\/Bad:1" is not an image reference/)
      return true
    })
    assert.throws(() => parseImageList('x@sha256:nothex\n'), /line 1: .*not a digest/)
  })
})

describe('registry mirror check', () => {
  let plain: RegistryServer

  before(async () => {
    plain = await startRegistryServer({images: HELD})
  })
  after(async () => {
    await plain.stop()
  })

  test('every image present: nothing missing, each asked once with the manifest types and the registry as ns', async () => {
    const before = plain.requests.length
    const result = await checkRegistryImages({images: IMAGES, nodes: nodes(['server-1'], mirrorYaml(plain)), readNodeFile: noFiles})
    assert.deepEqual(result.missing, [])
    assert.deepEqual(result.unreachable, [])
    assert.equal(result.checked, IMAGES.length)
    assert.equal(registryCheckError(result), undefined)
    const asked = plain.requests.slice(before)
    assert.deepEqual(asked.map((r) => `${r.method} ${r.path}`).sort(), HELD.map((h) => `HEAD /v2/${h.replace(/:([^:]+)$/, '/manifests/$1')}`).sort())
    for (const r of asked) {
      assert.equal(r.query, 'ns=docker.io')
      assert.ok(r.accept.includes(OCI_INDEX) && r.accept.includes('application/vnd.docker.distribution.manifest.list.v2+json'))
      assert.equal(r.status, 200)
    }
  })

  test('identical mirrors on several nodes are asked each image once; a node without registries.yaml is not in registry mode', async () => {
    const before = plain.manifestRequests().length
    const result = await checkRegistryImages({
      images: IMAGES,
      nodes: [...nodes(['server-1', 'server-2', 'agent-1'], mirrorYaml(plain)), {node: 'agent-2', registriesYaml: undefined, registriesPath: PATH}],
      readNodeFile: noFiles,
      concurrency: 3,
    })
    assert.equal(plain.manifestRequests().length - before, IMAGES.length)
    assert.equal(result.checked, IMAGES.length)
    assert.deepEqual(result.nodesWithoutMirrors, ['agent-2'])
  })

  test('two images missing: both listed under their mirror with a skopeo copy each, exit 3', async () => {
    plain.remove(HELD[1]!)
    plain.remove(HELD[4]!)
    try {
      const result = await checkRegistryImages({images: IMAGES, nodes: nodes(['server-1', 'agent-1'], mirrorYaml(plain)), readNodeFile: noFiles})
      assert.deepEqual(
        result.missing.map((m) => [m.image, m.endpoint, m.nodes]),
        [
          ['docker.io/rancher/klipper-lb:v0.4.9', plain.url, ['server-1', 'agent-1']],
          ['docker.io/rancher/mirrored-pause:3.6', plain.url, ['server-1', 'agent-1']],
        ],
      )
      const error = registryCheckError(result)
      assert.ok(error instanceof MissingImagesError)
      assert.equal(error.exitCode, ExitCode.preflightRefused)
      assert.equal(
        error.message,
        [
          '2 images of the target release are missing from the registry mirror:',
          `  ${plain.url} (nodes server-1, agent-1):`,
          '    docker.io/rancher/klipper-lb:v0.4.9',
          '    docker.io/rancher/mirrored-pause:3.6',
        ].join('\n'),
      )
      // Plain http: skopeo must be told not to expect TLS.
      assert.equal(
        error.hint,
        [
          `skopeo copy --all --dest-tls-verify=false docker://docker.io/rancher/klipper-lb:v0.4.9 docker://${plain.host}/rancher/klipper-lb:v0.4.9`,
          `skopeo copy --all --dest-tls-verify=false docker://docker.io/rancher/mirrored-pause:3.6 docker://${plain.host}/rancher/mirrored-pause:3.6`,
        ].join('\n'),
      )
    } finally {
      plain.add(HELD[1]!)
      plain.add(HELD[4]!)
    }
  })

  test('an image pinned by digest is asked and copied by its digest; the mirrors are tried in order and the first lacking it is named', async () => {
    const digest = `sha256:${'cd'.repeat(32)}`
    const [pinned] = parseImageList(`docker.io/rancher/mirrored-pause:3.6@${digest}\n`)
    const partial = await startRegistryServer({images: []})
    try {
      const result = await checkRegistryImages({
        images: [...IMAGES.slice(0, 1), pinned!],
        nodes: [...nodes(['n1'], mirrorYaml(plain)), ...nodes(['n2'], `mirrors:\n  docker.io:\n    endpoint: ["${plain.url}", "${partial.url}"]\n`)],
        readNodeFile: noFiles,
      })
      assert.ok(plain.manifestRequests().some((r) => r.path === `/v2/rancher/mirrored-pause/manifests/${digest}`))
      assert.deepEqual(result.missing.map((m) => [m.endpoint, m.image, m.nodes]), [[plain.url, pinned!.name, ['n1', 'n2']]], 'n2 lacks it on both its mirrors: the first is named')
      assert.equal(result.missing[0]!.copyCommand, `skopeo copy --all --preserve-digests --dest-tls-verify=false docker://docker.io/rancher/mirrored-pause@${digest} docker://${plain.host}/rancher/mirrored-pause@${digest}`)
    } finally {
      await partial.stop()
    }
  })

  test('rewrites are applied to the name asked, and the copy command pushes to the rewritten name', async () => {
    const server = await startRegistryServer({images: HELD.slice(1).map((h) => h.replace(/^rancher\//, 'mirrorproject/rancher-images/'))})
    try {
      const yaml = mirrorYaml(server, '    rewrite:\n      "^rancher/(.*)": "mirrorproject/rancher-images/$1"\n')
      const result = await checkRegistryImages({images: IMAGES, nodes: nodes(['n1'], yaml), readNodeFile: noFiles})
      assert.ok(server.manifestRequests().every((r) => r.path.startsWith('/v2/mirrorproject/rancher-images/')))
      assert.deepEqual(
        result.missing.map((m) => [m.image, m.asked]),
        [['docker.io/rancher/klipper-helm:v0.9.3-build20241008', 'mirrorproject/rancher-images/klipper-helm:v0.9.3-build20241008']],
      )
      assert.match(result.missing[0]!.copyCommand, new RegExp(` docker://${server.host}/mirrorproject/rancher-images/klipper-helm:v0\\.9\\.3-build20241008$`))
      assert.match(registryCheckError(result)!.message, /klipper-helm:v0\.9\.3-build20241008 \(asked as mirrorproject\/rancher-images\//)
    } finally {
      await server.stop()
    }
  })

  test('an image whose registry has no mirror (nor "*") is not asked: it is reported as unmirrored', async () => {
    const before = plain.requests.length
    const images = [...IMAGES.slice(0, 1), ...parseImageList('registry.k8s.io/pause:3.10\n')]
    const result = await checkRegistryImages({images, nodes: nodes(['n1', 'n2'], mirrorYaml(plain)), readNodeFile: noFiles})
    assert.deepEqual(result.unmirrored, [{image: 'registry.k8s.io/pause:3.10', nodes: ['n1', 'n2']}])
    assert.equal(result.checked, 1)
    assert.ok(plain.requests.slice(before).every((r) => !r.path.includes('pause')))

    const wildcard = `mirrors:\n  "*":\n    endpoint: ["${plain.url}"]\n`
    const viaStar = await checkRegistryImages({images, nodes: nodes(['n1'], wildcard), readNodeFile: noFiles})
    assert.deepEqual(viaStar.unmirrored, [])
    assert.deepEqual(viaStar.missing.map((m) => m.image), ['registry.k8s.io/pause:3.10'], 'through "*" it is asked, and the mirror lacks it')
  })

  test('the first mirror lacking an image is fine when the next one has it, as containerd tries them in order', async () => {
    const partial = await startRegistryServer({images: HELD.slice(0, 2)})
    try {
      const yaml = `mirrors:\n  docker.io:\n    endpoint: ["${partial.url}", "${plain.url}"]\n`
      const result = await checkRegistryImages({images: IMAGES, nodes: nodes(['n1'], yaml), readNodeFile: noFiles})
      assert.deepEqual(result.missing, [])
      assert.equal(partial.manifestRequests().length, IMAGES.length)
    } finally {
      await partial.stop()
    }
  })

  test('basic auth: the credentials of configs.<endpoint host>; wrong ones are refused without showing them', async () => {
    const server = await startRegistryServer({images: HELD.slice(0, 3), auth: {username: 'puller', password: PASSWORD}})
    try {
      const config = (password: string) => `${mirrorYaml(server)}configs:\n  "${server.host}":\n    auth:\n      username: puller\n      password: "${password}"\n`
      const result = await checkRegistryImages({images: IMAGES, nodes: nodes(['n1'], config(PASSWORD)), readNodeFile: noFiles})
      assert.deepEqual(result.missing.map((m) => m.image), IMAGES.slice(3).map((i) => i.name))
      assert.deepEqual(result.unreachable, [])
      const error = registryCheckError(result)!
      assert.ok(!`${error.message}\n${error.hint}`.includes(PASSWORD))
      assert.ok(!`${error.message}\n${error.hint}`.includes('puller'))
      assert.ok(server.manifestRequests().some((r) => r.authorization === 'basic' && r.status === 200))

      const wrong = `${PASSWORD}-old`
      const refused = await checkRegistryImages({images: IMAGES, nodes: nodes(['n1'], config(wrong)), readNodeFile: noFiles})
      assert.deepEqual(refused.missing, [])
      assert.equal(refused.unreachable.length, 1)
      assert.match(refused.unreachable[0]!.error, /refused the credentials of 127\.0\.0\.1:\d+ in n1:\/etc\/rancher\/k3s\/registries\.yaml \(401\)/)
      const refusal = registryCheckError(refused)
      assert.ok(refusal instanceof MirrorUnreachableError)
      assert.ok(!refusal.oneLine().includes(wrong) && !refusal.oneLine().includes(PASSWORD))

      const none = await checkRegistryImages({images: IMAGES.slice(0, 1), nodes: nodes(['n1'], mirrorYaml(server)), readNodeFile: noFiles})
      assert.match(none.unreachable[0]!.error, /asks for credentials and n1:.* has none for 127\.0\.0\.1:\d+/)
    } finally {
      await server.stop()
    }
  })

  test('bearer auth: the token service named in the challenge, with the basic credentials; token or access_token', async () => {
    for (const tokenField of ['token', 'access_token'] as const) {
      const server = await startRegistryServer({images: HELD.slice(0, 4), auth: {username: 'puller', password: PASSWORD, bearer: true, tokenField}})
      try {
        const yaml = `${mirrorYaml(server)}configs:\n  "${server.host}":\n    auth:\n      auth: ${Buffer.from(`puller:${PASSWORD}`).toString('base64')}\n`
        const result = await checkRegistryImages({images: IMAGES, nodes: nodes(['n1', 'n2'], yaml), readNodeFile: noFiles})
        assert.deepEqual(result.unreachable, [], tokenField)
        assert.deepEqual(result.missing.map((m) => m.image), ['docker.io/rancher/mirrored-pause:3.6'], tokenField)
        const tokenRequests = server.requests.filter((r) => r.path === '/token')
        assert.equal(tokenRequests.length, IMAGES.length, 'one token per repository scope')
        assert.ok(tokenRequests.every((r) => r.authorization === 'basic' && r.status === 200 && r.query.includes('scope=repository%3Arancher%2F')))
        assert.equal(server.manifestRequests().filter((r) => r.authorization === 'bearer').length, IMAGES.length)
        assert.ok(!registryCheckError(result)!.oneLine().includes(PASSWORD))
      } finally {
        await server.stop()
      }
    }
  })

  describe('TLS', () => {
    let server: RegistryServer

    before(async () => {
      server = await startRegistryServer({images: HELD, tls: true})
    })
    after(async () => {
      await server.stop()
    })

    const tlsYaml = (extra: string) => `${mirrorYaml(server)}configs:\n  "${server.host}":\n    tls:\n${extra}`

    test('the CA named by the node\'s registries.yaml is read from that node and verifies the mirror', async () => {
      const reads: string[] = []
      const result = await checkRegistryImages({
        images: IMAGES,
        nodes: nodes(['server-1', 'agent-1'], tlsYaml(`      ca_file: ${CA_PATH}\n`)),
        readNodeFile: async (node, path) => {
          reads.push(`${node}:${path}`)
          return server.caPem!
        },
      })
      assert.deepEqual(result.unreachable, [])
      assert.deepEqual(result.missing, [])
      assert.deepEqual(reads, [`server-1:${CA_PATH}`, `agent-1:${CA_PATH}`])
      assert.deepEqual(result.warnings, [])
    })

    test('a CA that did not sign the mirror\'s certificate: unreachable, naming the endpoint', async () => {
      const other = await startRegistryServer({images: [], tls: true})
      await other.stop()
      const result = await checkRegistryImages({images: IMAGES, nodes: nodes(['n1'], tlsYaml(`      ca_file: ${CA_PATH}\n`)), readNodeFile: async () => other.caPem!})
      assert.deepEqual(result.missing, [])
      assert.equal(result.unreachable.length, 1)
      assert.equal(result.unreachable[0]!.endpoint, server.url)
      assert.match(result.unreachable[0]!.error, /^TLS: /)
      assert.equal(result.unreachable[0]!.images, IMAGES.length)
      const error = registryCheckError(result)!
      assert.ok(error instanceof MirrorUnreachableError)
      assert.ok(error.message.includes(server.url))
      assert.equal(error.exitCode, ExitCode.preflightRefused)

      const noCa = await checkRegistryImages({images: IMAGES.slice(0, 1), nodes: nodes(['n1'], mirrorYaml(server)), readNodeFile: noFiles})
      assert.match(noCa.unreachable[0]!.error, /^TLS: /, 'without ca_file the system CAs are used, which do not know this one')
    })

    test('a CA file that cannot be read on the node is named with the node', async () => {
      const before = server.requests.length
      const result = await checkRegistryImages({
        images: IMAGES.slice(0, 2),
        nodes: nodes(['n1'], tlsYaml(`      ca_file: ${CA_PATH}\n`)),
        readNodeFile: async () => {
          throw new Error('No such file')
        },
      })
      assert.equal(result.unreachable.length, 1)
      assert.match(result.unreachable[0]!.error, new RegExp(`cannot read ${CA_PATH} on n1 .*No such file`))
      assert.equal(server.requests.length, before, 'nothing is asked without the CA')
    })

    test('insecure_skip_verify is honoured because the node is configured so, and said in a warning', async () => {
      const result = await checkRegistryImages({images: IMAGES, nodes: nodes(['n1'], tlsYaml('      insecure_skip_verify: true\n')), readNodeFile: noFiles})
      assert.deepEqual(result.unreachable, [])
      assert.deepEqual(result.missing, [])
      assert.equal(result.warnings.length, 1)
      assert.match(result.warnings[0]!, /not verified, because n1:\/etc\/rancher\/k3s\/registries\.yaml sets insecure_skip_verify: true/)
    })
  })

  test('a mirror that is down is unreachable, grouped per endpoint', async () => {
    const down = await startRegistryServer({images: []})
    await down.stop()
    const result = await checkRegistryImages({images: IMAGES, nodes: nodes(['n1', 'n2'], mirrorYaml(down)), readNodeFile: noFiles, timeoutMs: 2000})
    assert.deepEqual(result.unreachable, [{endpoint: down.url, error: 'connection refused', nodes: ['n1', 'n2'], images: IMAGES.length}])
  })

  test('a cancelled check stops with AbortedError', async () => {
    const controller = new AbortController()
    controller.abort()
    await assert.rejects(checkRegistryImages({images: IMAGES, nodes: nodes(['n1'], mirrorYaml(plain)), readNodeFile: noFiles, signal: controller.signal}), {name: 'AbortedError'})
  })
})
