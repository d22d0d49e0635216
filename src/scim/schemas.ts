// What OneID's SCIM service provider supports, as its discovery endpoints publish it
// (RFC 7643 sections 5-7). The attribute definitions here are what Users and Groups
// implement; unknown attributes are ignored on write, as RFC 7644 3.3 allows.
import { SCIM_ENTERPRISE_USER_SCHEMA, SCIM_GROUP_SCHEMA, SCIM_USER_SCHEMA } from './filter-sql.ts';

export const LIST_RESPONSE_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';
export const PATCH_OP_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
export const BULK_REQUEST_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:BulkRequest';
export const BULK_RESPONSE_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:BulkResponse';
export const SEARCH_REQUEST_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:SearchRequest';

/** Limits advertised in ServiceProviderConfig and enforced by the endpoints. */
export const SCIM_LIMITS = {
  maxResults: 1000,
  bulkMaxOperations: 1000,
  bulkMaxPayloadSize: 1048576,
  defaultCount: 100,
  /**
   * How deeply a request body (or a Bulk operation's data) may nest objects and arrays. The
   * deepest SCIM resource or PatchOp nests 5-6 levels; the bound only stops stack-overflowing input.
   */
  maxJsonDepth: 32,
};

type Attr = Record<string, unknown>;
const attr = (name: string, type: string, extra: Attr = {}): Attr => ({
  name, type, multiValued: false, required: false, caseExact: false, mutability: 'readWrite', returned: 'default', uniqueness: 'none', ...extra,
});
const sub = (parent: string, names: [string, string, Attr?][]): Attr[] => names.map(([n, t, x]) => attr(n, t, { description: `${parent}.${n}`, ...x }));
const multi = (name: string, subs: Attr[], extra: Attr = {}): Attr => attr(name, 'complex', { multiValued: true, subAttributes: subs, ...extra });
const typedValue = (parent: string, types: string[], value: [string, Attr?] = ['string']) => sub(parent, [
  ['value', value[0], value[1]], ['display', 'string'], ['type', 'string', types.length ? { canonicalValues: types } : {}], ['primary', 'boolean'],
]);

// Every attribute OneID stores for a User (users.mapper.ts: columns, and scim_attributes for the
// rest), with RFC 7643 section 4.1 / 4.3 characteristics; test/e2e/scim-conformance checks that
// each is accepted on write and filterable.
export function scimSchemas(baseUrl: string): Attr[] {
  const meta = (id: string) => ({ resourceType: 'Schema', location: `${baseUrl}/Schemas/${id}` });
  return [
    {
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:Schema'],
      id: SCIM_USER_SCHEMA, name: 'User', description: 'User Account',
      attributes: [
        attr('id', 'string', { caseExact: true, mutability: 'readOnly', returned: 'always', uniqueness: 'server' }),
        attr('externalId', 'string', { caseExact: true }),
        attr('userName', 'string', { required: true, uniqueness: 'server', description: 'unique; compared case-insensitively; stored lower-case' }),
        attr('name', 'complex', {
          subAttributes: sub('name', [
            ['formatted', 'string', { description: 'the full name; derived from the parts unless set explicitly (see the README)' }],
            ['familyName', 'string'], ['givenName', 'string'], ['middleName', 'string'], ['honorificPrefix', 'string'], ['honorificSuffix', 'string'],
          ]),
        }),
        attr('displayName', 'string'),
        attr('nickName', 'string'),
        attr('profileUrl', 'reference', { referenceTypes: ['external'] }),
        attr('title', 'string'),
        attr('userType', 'string'),
        attr('preferredLanguage', 'string'),
        attr('locale', 'string'),
        attr('timezone', 'string'),
        attr('active', 'boolean', { description: 'false suspends the user and ends all their sessions' }),
        attr('password', 'string', { mutability: 'writeOnly', returned: 'never' }),
        multi('emails', typedValue('emails', ['work', 'home', 'other'])),
        multi('phoneNumbers', typedValue('phoneNumbers', ['work', 'home', 'mobile', 'fax', 'pager', 'other'])),
        multi('ims', typedValue('ims', ['aim', 'gtalk', 'icq', 'xmpp', 'msn', 'skype', 'qq', 'yahoo'])),
        multi('photos', typedValue('photos', ['photo', 'thumbnail'], ['reference', { referenceTypes: ['external'] }])),
        multi('addresses', sub('addresses', [
          ['formatted', 'string'], ['streetAddress', 'string'], ['locality', 'string'], ['region', 'string'], ['postalCode', 'string'], ['country', 'string'],
          ['type', 'string', { canonicalValues: ['work', 'home', 'other'] }], ['primary', 'boolean'],
        ])),
        multi('groups', sub('groups', [
          ['value', 'string', { mutability: 'readOnly' }], ['$ref', 'reference', { mutability: 'readOnly', referenceTypes: ['Group'] }],
          ['display', 'string', { mutability: 'readOnly' }], ['type', 'string', { mutability: 'readOnly', canonicalValues: ['direct', 'indirect'] }],
        ]), { mutability: 'readOnly' }),
        multi('entitlements', typedValue('entitlements', [])),
        multi('roles', typedValue('roles', [])),
        multi('x509Certificates', typedValue('x509Certificates', [], ['binary', { caseExact: true }])),
      ],
      meta: meta(SCIM_USER_SCHEMA),
    },
    {
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:Schema'],
      id: SCIM_ENTERPRISE_USER_SCHEMA, name: 'EnterpriseUser', description: 'Enterprise User',
      attributes: [
        attr('employeeNumber', 'string'),
        attr('costCenter', 'string'),
        attr('organization', 'string'),
        attr('division', 'string'),
        attr('department', 'string', { description: 'the name of the primary department; created under the top level if missing' }),
        attr('manager', 'complex', {
          subAttributes: sub('manager', [
            ['value', 'string'], ['$ref', 'reference', { referenceTypes: ['User'] }], ['displayName', 'string', { mutability: 'readOnly' }],
          ]),
        }),
      ],
      meta: meta(SCIM_ENTERPRISE_USER_SCHEMA),
    },
    {
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:Schema'],
      id: SCIM_GROUP_SCHEMA, name: 'Group', description: 'Group',
      attributes: [
        attr('id', 'string', { caseExact: true, mutability: 'readOnly', returned: 'always', uniqueness: 'server' }),
        attr('externalId', 'string', { caseExact: true }),
        attr('displayName', 'string', { required: true, uniqueness: 'server' }),
        multi('members', sub('members', [['value', 'string', { mutability: 'immutable' }], ['$ref', 'reference', { mutability: 'immutable', referenceTypes: ['User'] }], ['display', 'string', { mutability: 'immutable' }], ['type', 'string', { canonicalValues: ['User'] }]])),
      ],
      meta: meta(SCIM_GROUP_SCHEMA),
    },
  ];
}

export function scimResourceTypes(baseUrl: string): Attr[] {
  return [
    {
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:ResourceType'],
      id: 'User', name: 'User', endpoint: '/Users', description: 'User Account', schema: SCIM_USER_SCHEMA,
      schemaExtensions: [{ schema: SCIM_ENTERPRISE_USER_SCHEMA, required: false }],
      meta: { resourceType: 'ResourceType', location: `${baseUrl}/ResourceTypes/User` },
    },
    {
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:ResourceType'],
      id: 'Group', name: 'Group', endpoint: '/Groups', description: 'Group', schema: SCIM_GROUP_SCHEMA, schemaExtensions: [],
      meta: { resourceType: 'ResourceType', location: `${baseUrl}/ResourceTypes/Group` },
    },
  ];
}

export function serviceProviderConfig(baseUrl: string, documentationUri: string): Attr {
  return {
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig'],
    documentationUri,
    patch: { supported: true },
    bulk: { supported: true, maxOperations: SCIM_LIMITS.bulkMaxOperations, maxPayloadSize: SCIM_LIMITS.bulkMaxPayloadSize },
    filter: { supported: true, maxResults: SCIM_LIMITS.maxResults },
    changePassword: { supported: true },
    sort: { supported: true },
    etag: { supported: true },
    authenticationSchemes: [{
      type: 'oauthbearertoken', name: 'OAuth Bearer Token', primary: true,
      description: 'A provisioning token from `oneid scim-tokens create` or the admin API, sent as Authorization: Bearer',
    }],
    meta: { resourceType: 'ServiceProviderConfig', location: `${baseUrl}/ServiceProviderConfig` },
  };
}
