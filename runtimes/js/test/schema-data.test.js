// src/schema-data.js is generated from spec/schema, the schemas' one home: it must say what spec/schema says.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { schemaModuleText } from '../scripts/gen-schema.mjs';

const here = dirname(fileURLToPath(import.meta.url));

test('src/schema-data.js is what scripts/gen-schema.mjs makes of spec/schema', () => {
  const current = readFileSync(join(here, '..', 'src', 'schema-data.js'), 'utf8');
  assert.ok(current === schemaModuleText(),
    'src/schema-data.js is out of sync with spec/schema: run node runtimes/js/scripts/gen-schema.mjs');
});
