// The SCIM User OneID sends for a person, the PATCH that brings an app's copy to it, and the
// differences the drift report names.
import {
  representUser, representationHash, patchOperations, differingAttributes, validateMapping, SCIM_ENTERPRISE_SCHEMA, type PersonFacts,
} from '../../src/provisioning/mapping.ts';
import type { User } from '../../src/directory/users.repo.ts';
import { AppError } from '../../src/shared/errors.ts';
import type { ScimUser } from '../../src/provisioning/scim-client.ts';

const user = (over: Partial<User> = {}): User => ({
  id: '6f1c2a7e-1b2c-4d5e-8f90-1234567890ab', username: 'ada', email: 'ada@example.com', emailVerified: true, emails: [],
  givenName: 'Ada', familyName: 'Lovelace', displayName: null, locale: null, phone: null, employeeNumber: 'E7', title: 'Analyst',
  managerId: null, customAttributes: { costCentre: 'CC-1' }, scimAttributes: {}, externalId: null, status: 'active', adminRoles: [],
  version: 1, createdAt: new Date(0), updatedAt: new Date(0), ...over,
});

const facts = (over: Partial<PersonFacts> = {}): PersonFacts => ({
  user: user(), departmentName: 'Research', managerRemoteId: 'm-42', roles: [{ key: 'viewer', name: 'Viewer' }, { key: 'editor', name: 'Editor' }], ...over,
});

describe('representUser', () => {
  it('maps a person to the core and enterprise attributes, with roles sorted by key', () => {
    const { user: u, roleGroups } = representUser(facts(), {}, 'roles', true);
    expect(u).toEqual({
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:User', SCIM_ENTERPRISE_SCHEMA],
      userName: 'ada', externalId: user().id, active: true, displayName: 'Ada Lovelace', title: 'Analyst',
      name: { givenName: 'Ada', familyName: 'Lovelace' }, emails: [{ value: 'ada@example.com', type: 'work', primary: true }],
      [SCIM_ENTERPRISE_SCHEMA]: { employeeNumber: 'E7', department: 'Research', manager: { value: 'm-42' } },
      roles: [{ value: 'editor', display: 'Editor' }, { value: 'viewer', display: 'Viewer' }],
    });
    expect(roleGroups).toEqual([]);
  });

  it('sends roles as entitlements, as group keys, or not at all', () => {
    expect(representUser(facts(), {}, 'entitlements', true).user).toMatchObject({ entitlements: [{ value: 'editor' }, { value: 'viewer' }] });
    const asGroups = representUser(facts(), {}, 'groups', true);
    expect(asGroups.user).not.toHaveProperty('roles');
    expect(asGroups.roleGroups).toEqual(['editor', 'viewer']);
    expect(representUser(facts(), {}, 'none', true).user).not.toHaveProperty('roles');
  });

  it('follows the mapping: another source, a custom attribute, an attribute left out', () => {
    const mapping = validateMapping({ userName: 'email', 'enterprise.costCenter': 'custom:costCentre', 'enterprise.department': null, title: null });
    const { user: u } = representUser(facts(), mapping, 'none', true);
    expect(u.userName).toBe('ada@example.com');
    expect(u).not.toHaveProperty('title');
    expect((u as Record<string, any>)[SCIM_ENTERPRISE_SCHEMA]).toEqual({ employeeNumber: 'E7', costCenter: 'CC-1', manager: { value: 'm-42' } });
  });

  it('hashes the same person the same way, and a changed role differently', () => {
    const a = representationHash(representUser(facts(), {}, 'roles', true));
    expect(representationHash(representUser(facts(), {}, 'roles', true))).toBe(a);
    expect(representationHash(representUser(facts({ roles: [] }), {}, 'roles', true))).not.toBe(a);
    expect(representationHash(representUser(facts(), {}, 'roles', false))).not.toBe(a);
  });
});

describe('patchOperations', () => {
  it('replaces what has a value and removes what has none', () => {
    const rep = representUser(facts({ user: user({ title: null }), managerRemoteId: null, roles: [] }), {}, 'roles', true);
    const ops = patchOperations(rep);
    expect(ops).toContainEqual({ op: 'replace', path: 'userName', value: 'ada' });
    expect(ops).toContainEqual({ op: 'remove', path: 'title' });
    expect(ops).toContainEqual({ op: 'remove', path: 'roles' });
    expect(ops).toContainEqual({ op: 'remove', path: `${SCIM_ENTERPRISE_SCHEMA}:manager` });
    expect(ops).toContainEqual({ op: 'replace', path: `${SCIM_ENTERPRISE_SCHEMA}:department`, value: 'Research' });
  });
});

describe('differingAttributes', () => {
  const rep = representUser(facts(), {}, 'roles', true);
  const remote = (over: Record<string, unknown>): ScimUser => ({ id: 'r1', ...(rep.user as object), ...over } as ScimUser);

  it('finds nothing in an exact copy, and ignores the case of userName and the order of roles', () => {
    expect(differingAttributes(rep, remote({}))).toEqual([]);
    expect(differingAttributes(rep, remote({ userName: 'ADA', roles: [{ value: 'viewer' }, { value: 'editor' }] }))).toEqual([]);
  });

  it('names each attribute that differs', () => {
    const changed = remote({
      displayName: 'Someone', active: false, name: { givenName: 'Ada', familyName: 'Byron' }, roles: [{ value: 'viewer' }],
      emails: [{ value: 'other@example.com', primary: true }], [SCIM_ENTERPRISE_SCHEMA]: { employeeNumber: 'E7', department: 'Sales', manager: { value: 'm-42' } },
    });
    expect(differingAttributes(rep, changed).sort()).toEqual(['active', 'displayName', 'emails', 'enterprise.department', 'name.familyName', 'roles']);
  });
});

describe('validateMapping', () => {
  it.each([
    [{ password: 'username' }, 'provisioning.mapping_unknown_attribute'],
    [{ title: 'secret' }, 'provisioning.mapping_unknown_source'],
    [{ title: 'custom:' }, 'provisioning.mapping_unknown_source'],
    [{ userName: null }, 'provisioning.mapping_username_required'],
    [{ 'enterprise.manager': 'username' }, 'provisioning.mapping_manager'],
    [{ title: 'manager' }, 'provisioning.mapping_manager'],
  ])('refuses %j with %s', (input, code) => {
    const err = (() => { try { validateMapping(input as Record<string, unknown>); } catch (e) { return e; } })();
    expect(err).toBeInstanceOf(AppError);
    expect(err).toMatchObject({ kind: 'invalid_argument', code });
  });
});
