/**
 * The JSON Schema of homelab.yaml (issue 10): generated from the zod schema, it accepts the
 * README's examples and refuses what homelab refuses at the level a schema can see (unknown keys,
 * wrong types, enum values). Checked with ajv, an implementation independent of zod, as an
 * editor's would be.
 */
import assert from 'node:assert/strict'
import {readFile} from 'node:fs/promises'
import path from 'node:path'
import {test} from 'node:test'

import {Ajv2020} from 'ajv/dist/2020.js'
import {parse} from 'yaml'

import {configJsonSchema, schemaModeline} from '../src/config/schema-json.js'
import {parseConfig} from '../src/config/load.js'
import {REPO_ROOT} from './sim/homelab.js'

const validate = new Ajv2020({allErrors: true, strict: false}).compile(configJsonSchema())

/** The README's homelab.yaml examples: the quick start's heredoc and every ```yaml block naming nodes. */
async function readmeExamples(): Promise<Array<{where: string; text: string}>> {
  const readme = await readFile(path.join(REPO_ROOT, 'README.md'), 'utf8')
  const examples: Array<{where: string; text: string}> = []
  const heredoc = /cat > homelab\.yaml <<'YAML'\n([\s\S]*?)\n\s*YAML\n/.exec(readme)
  if (heredoc) examples.push({where: 'quick start', text: heredoc[1].replace(/^ {4}/gm, '')})
  for (const block of readme.matchAll(/```yaml\n([\s\S]*?)```/g)) {
    if (/^nodes:/m.test(block[1])) examples.push({where: `block at offset ${block.index}`, text: block[1]})
  }
  return examples
}

// The reference lists a node's own settings as `{user: …, port: …}`: give the placeholders values of their kind.
const PLACEHOLDERS: Record<string, string> = {
  user: 'admin',
  port: '2222',
  identityFile: '~/.ssh/id_ed25519',
  become: 'sudo',
  proxyJump: 'bastion',
  binDir: '/usr/local/bin',
  dataDir: '/var/lib/rancher/k3s',
  configDir: '/etc/kubernetes',
  repositoryFile: '/etc/apt/sources.list.d/kubernetes.list',
}
const filled = (text: string) => text.replace(/(\w+): …/g, (whole, key: string) => (PLACEHOLDERS[key] ? `${key}: ${PLACEHOLDERS[key]}` : whole))

const errors = () => (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}`).join('\n')

test("the schema accepts the README's homelab.yaml examples, as homelab does", async () => {
  const examples = await readmeExamples()
  assert.ok(examples.length >= 2, `found the quick start and the reference (${examples.map((e) => e.where).join(', ')})`)
  assert.ok(examples.some((e) => e.text.includes('agentConcurrency')), 'the reference with every key is among them')
  for (const {where, text} of examples) {
    const value = parse(filled(text))
    assert.equal(validate(value), true, `${where}:\n${errors()}`)
    // The schema and homelab agree on it.
    assert.doesNotThrow(() => parseConfig(filled(text), '/lab/homelab.yaml', {home: '/home/me'}), where)
  }
})

test('the schema refuses a misspelt key, as homelab does', () => {
  const text = 'ssh:\n  usr: admin\nnodes:\n  - {name: server-1, host: 10.0.0.11, role: server}\n'
  assert.equal(validate(parse(text)), false)
  assert.match(errors(), /\/ssh must NOT have additional properties.*"additionalProperty":"usr"/)
  assert.throws(() => parseConfig(text, '/lab/homelab.yaml', {home: '/home/me'}), /ssh\.usr: unknown key \(did you mean `user`\?\)/)
})

test('the schema refuses wrong types and values: role, port, durations, a nested typo', () => {
  const cases: Array<[string, RegExp]> = [
    ['nodes:\n  - {name: a, host: h, role: worker}\n', /\/nodes\/0\/role must be equal to one of the allowed values/],
    ['ssh: {port: 70000}\nnodes: []\n', /\/ssh\/port must be <= 65535/],
    ['ssh: {connectTimeout: soon}\nnodes: []\n', /\/ssh\/connectTimeout must match pattern/],
    ['upgrade: {drain: {ignoreDaemonSets: true}}\nnodes: []\n', /\/upgrade\/drain must NOT have additional properties.*ignoreDaemonSets/],
    ['distribution: k8s\n', /\/distribution must be equal to one of the allowed values/],
  ]
  for (const [text, expected] of cases) {
    assert.equal(validate(parse(text)), false, text)
    assert.match(errors(), expected, text)
  }
  // Durations in every form homelab takes.
  for (const timeout of ['30s', '1h30m', '250ms', '1.5h', 45]) assert.equal(validate({upgrade: {drain: {timeout}}}), true, `${timeout}: ${errors()}`)
})

test('a key with nothing after it is "not set" for the schema as for homelab (sections commented out)', () => {
  const text = 'distribution:\nssh:\n  # user: admin\ninstall:\nupgrade:\n  drain:\n    timeout:\nnodes:\n  - {name: server-1, host: 10.0.0.11, role: server}\n'
  assert.equal(validate(parse(text)), true, errors())
  assert.doesNotThrow(() => parseConfig(text, '/lab/homelab.yaml', {home: '/home/me'}))
  // A list entry that is empty is still wrong for both.
  const empty = 'nodes:\n  -\n'
  assert.equal(validate(parse(empty)), false)
  assert.throws(() => parseConfig(empty, '/lab/homelab.yaml', {home: '/home/me'}))
})

test('every key carries a description for the editor, and the modeline names the schema', () => {
  const schema = configJsonSchema() as {properties: Record<string, {description?: string; properties?: Record<string, {description?: string}>}>}
  for (const [key, value] of Object.entries(schema.properties)) assert.ok(value.description, key)
  assert.match(schema.properties.ssh.properties?.connectTimeout.description ?? '', /connect.*a duration: 30s/)
  assert.equal(schemaModeline('/usr/lib/node_modules/homelab/homelab.schema.json'), '# yaml-language-server: $schema=/usr/lib/node_modules/homelab/homelab.schema.json')
})
