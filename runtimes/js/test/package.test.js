// The package as npm ships it: `npm pack`, the tarball installed into an empty project (a local tarball without
// dependencies needs no registry: --offline), and both entry points imported from there.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { OP_NAMES } from '../src/index.js';

const PACKAGE = join(dirname(fileURLToPath(import.meta.url)), '..');
const DQN = join(PACKAGE, '..', '..', 'conformance', 'golden', 'zoo_dqn_cartpole.sbif');
const npm = (args, cwd) => execFileSync('npm', args.concat(['--no-audit', '--no-fund', '--loglevel=error']),
  { cwd, encoding: 'utf8', env: { ...process.env, npm_config_update_notifier: 'false' } });

test('npm pack makes a tarball that installs offline and imports in a fresh project', () => {
  const directory = mkdtempSync(join(tmpdir(), 'sbif-runtime-pack-'));
  try {
    npm(['pack', '--pack-destination', directory], PACKAGE);
    const [tarball] = readdirSync(directory).filter((name) => name.endsWith('.tgz'));
    assert.ok(tarball, 'npm pack wrote a tarball');
    const project = join(directory, 'project');
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    npm(['install', '--offline', join(directory, tarball)], project);
    const installed = join(project, 'node_modules', 'sbif-runtime');
    for (const file of ['sbif.d.ts', 'node.d.ts', 'src/index.js', 'src/schema-data.js', 'bin/sbif-protocol.js']) {
      assert.ok(existsSync(join(installed, file)), `the package holds ${file}`);
    }
    assert.ok(!existsSync(join(installed, 'test')), 'tests are not shipped');
    writeFileSync(join(project, 'use.mjs'), `
      import { loadModel, tensor, OP_NAMES } from 'sbif-runtime';
      import { loadModelFile } from 'sbif-runtime/node';
      const model = loadModelFile(${JSON.stringify(DQN)});
      const { action } = model.run({ obs: tensor('float32', [2, 4]) }, ['action']);
      console.log(JSON.stringify({ ops: OP_NAMES.length, action: action.shape, same: typeof loadModel }));
    `);
    const printed = JSON.parse(execFileSync(process.execPath, ['use.mjs'], { cwd: project, encoding: 'utf8' }));
    assert.deepEqual(printed, { ops: OP_NAMES.length, action: [2], same: 'function' });
    const hello = execFileSync(join(project, 'node_modules', '.bin', 'sbif-protocol'),
      { input: '{"type":"hello"}\n', encoding: 'utf8' });
    assert.equal(JSON.parse(hello).runtime.name, 'sbif-js');
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});
