import { has, isIntegerLiteral, isObject, show } from './json.js';
import { NAME } from './about.js';
import { DOCUMENT_SCHEMAS } from './schema-data.js';

// The document's JSON Schema validation (SPEC section 3), with SPEC section 1's reading of integers.

// The JSON Schema of each format version's document (spec/schema: its one home, compiled into schema-data.js),
// checked with the draft-7 keywords it uses. A keyword this validator does not implement is refused when the schema is
// first used, so a change to the schema cannot be ignored.
const SCHEMA_KEYWORDS = new Set(['$ref', 'additionalProperties', 'anyOf', 'const', 'enum', 'items', 'maxLength',
  'minItems', 'minLength', 'minimum', 'oneOf', 'pattern', 'properties', 'required', 'type']);
const SCHEMA_ANNOTATIONS = new Set(['$id', '$schema', 'title', 'description', 'definitions']);
const checkedVersions = new Set();

// The schema of format version `version`, its keywords checked on first use.
export function documentSchema(version) {
  const schema = DOCUMENT_SCHEMAS[version];
  if (!checkedVersions.has(version)) {
    const file = `spec/schema/sbif-document-v${version}.schema.json`;
    const walk = (node, where) => {
      if (!isObject(node)) throw new Error(`${file}: ${where} is not a schema object`);
      for (const [keyword, value] of Object.entries(node)) {
        if (!SCHEMA_KEYWORDS.has(keyword) && !SCHEMA_ANNOTATIONS.has(keyword)) {
          throw new Error(`${file}: keyword ${keyword} at ${where} is not implemented by ${NAME}`);
        }
        if (keyword === 'definitions' || keyword === 'properties') {
          for (const [name, sub] of Object.entries(value)) walk(sub, `${where}/${keyword}/${name}`);
        } else if (keyword === 'items' || (keyword === 'additionalProperties' && typeof value !== 'boolean')) {
          walk(value, `${where}/${keyword}`);
        } else if (keyword === 'anyOf' || keyword === 'oneOf') {
          value.forEach((sub, index) => walk(sub, `${where}/${keyword}/${index}`));
        }
      }
    };
    walk(schema, '#');
    checkedVersions.add(version);
  }
  return schema;
}

// The schema's types, of the value holder[member]: an integer is a number written without fraction or exponent (SPEC
// section 1), not draft 7's integral number.
const JSON_TYPES = {
  object: isObject, array: Array.isArray, string: (v) => typeof v === 'string', boolean: (v) => typeof v === 'boolean',
  null: (v) => v === null, number: (v) => typeof v === 'number',
  integer: (v, holder, member) => (holder === undefined ? Number.isInteger(v) : isIntegerLiteral(holder, member)),
};
// Names (the schema's definition `name`) hold no U+0000 (SPEC section 3): C runtimes name values with C strings.
const NAME_DEFINITION = '#/definitions/name';

function jsonEqual(a, b) {
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => jsonEqual(v, b[i]));
  }
  if (isObject(a) || isObject(b)) {
    return isObject(a) && isObject(b) && Object.keys(a).length === Object.keys(b).length
      && Object.keys(a).every((key) => has(b, key) && jsonEqual(a[key], b[key]));
  }
  return a === b;
}

// The first violation of `node` by `instance` ({path, message}), keywords in their written order, or null. `holder`
// is the object or array holding `instance` as its member path[path.length - 1] (undefined for the document itself).
export function schemaViolation(instance, node, root, path, holder) {
  for (const [keyword, value] of Object.entries(node)) {
    const found = schemaKeyword(keyword, value, instance, node, root, path, holder);
    if (found) return found;
  }
  return null;
}

function schemaKeyword(keyword, value, instance, node, root, path, holder) {
  const fail = (message) => ({ path, message: `${show(instance)} ${message}` });
  switch (keyword) {
    case '$ref': {
      const found = schemaViolation(instance, value.slice(2).split('/').reduce((at, part) => at[part], root), root,
        path, holder);
      if (found || value !== NAME_DEFINITION || typeof instance !== 'string' || !instance.includes('\u0000')) {
        return found;
      }
      return fail('contains U+0000, which no name may hold');
    }
    case 'type': {
      const names = Array.isArray(value) ? value : [value];
      const member = path[path.length - 1];
      if (names.some((name) => JSON_TYPES[name](instance, holder, member))) return null;
      // an integral number that is no integer was written with a fraction or an exponent, which show() drops
      const written = names.includes('integer') && Number.isInteger(instance) ? ' (written with a fraction or exponent)'
        : '';
      return fail(`is not of type ${names.join(', ')}${written}`);
    }
    case 'const':
      return jsonEqual(instance, value) ? null : fail(`is not ${show(value)}`);
    case 'enum':
      return value.some((each) => jsonEqual(instance, each)) ? null : fail(`is not one of ${show(value)}`);
    case 'minimum':
      return typeof instance === 'number' && instance < value ? fail(`is less than the minimum of ${value}`) : null;
    case 'minItems':
      return Array.isArray(instance) && instance.length < value ? fail('is too short') : null;
    case 'minLength':
      return typeof instance === 'string' && [...instance].length < value ? fail('is too short') : null;
    case 'maxLength':
      return typeof instance === 'string' && [...instance].length > value ? fail('is too long') : null;
    case 'pattern':
      return typeof instance === 'string' && !new RegExp(value, 'u').test(instance)
        ? fail(`does not match ${value}`) : null;
    case 'required': {
      const missing = isObject(instance) ? value.filter((name) => !has(instance, name)) : [];
      return missing.length ? { path, message: `${show(missing[0])} is a required property` } : null;
    }
    case 'properties':
      if (!isObject(instance)) return null;
      for (const [name, sub] of Object.entries(value)) {
        if (has(instance, name)) {
          const found = schemaViolation(instance[name], sub, root, path.concat([name]), instance);
          if (found) return found;
        }
      }
      return null;
    case 'additionalProperties': {
      if (!isObject(instance)) return null;
      const extras = Object.keys(instance).filter((name) => !has(node.properties || {}, name));
      if (value === false) {
        const message = `additional properties are not allowed (${extras.map(show).join(', ')})`;
        return extras.length ? { path, message } : null;
      }
      for (const name of typeof value === 'boolean' ? [] : extras) {
        const found = schemaViolation(instance[name], value, root, path.concat([name]), instance);
        if (found) return found;
      }
      return null;
    }
    case 'items':
      if (!Array.isArray(instance)) return null;
      for (let index = 0; index < instance.length; index++) {
        const found = schemaViolation(instance[index], value, root, path.concat([index]), instance);
        if (found) return found;
      }
      return null;
    case 'anyOf':
    case 'oneOf': {
      const valid = value.filter((sub) => schemaViolation(instance, sub, root, path, holder) === null).length;
      if (valid === 0) return fail('is not valid under any of the given schemas');
      return keyword === 'oneOf' && valid > 1 ? fail('is valid under more than one of the given schemas') : null;
    }
    default:
      return null; // annotations
  }
}

