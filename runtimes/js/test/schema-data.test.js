// src/schema-data.js is generated from spec/schema, the schemas' one home: it must say what spec/schema says.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { readSchemas, schemaModuleText } from '../scripts/gen-schema.mjs';
import { DOCUMENT_SCHEMAS } from '../src/schema-data.js';

const here = dirname(fileURLToPath(import.meta.url));

test('src/schema-data.js is what scripts/gen-schema.mjs makes of spec/schema', () => {
  const current = readFileSync(join(here, '..', 'src', 'schema-data.js'), 'utf8');
  assert.ok(current === schemaModuleText(),
    'src/schema-data.js is out of sync with spec/schema: run node runtimes/js/scripts/gen-schema.mjs');
});

// The module writes each shared part once and later versions as changes to earlier ones: what it builds must still be
// each schema file, value for value and in the file's key order (which orders the validator's checks).
test('DOCUMENT_SCHEMAS holds each spec/schema file, values and key order', () => {
  const schemas = readSchemas();
  assert.deepEqual(Object.keys(DOCUMENT_SCHEMAS), schemas.map(([version]) => version));
  for (const [version, schema] of schemas) {
    assert.equal(JSON.stringify(DOCUMENT_SCHEMAS[version]), JSON.stringify(schema), `version ${version}`);
  }
});
