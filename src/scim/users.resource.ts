// SCIM Users: reads and the write operations (create, replace, patch, remove) that the HTTP routes
// and /Bulk share. Every write is one database transaction that first reads and validates
// everything (the body, the manager reference, the department), then changes the user through
// the directory's own operations (UsersService, DepartmentsService), so SCIM writes get the same
// validation, audit events (with the SCIM client as actor) and lifecycle effects as the admin
// API. Bad input therefore never leaves a partial write: the transaction rolls back.
//
// Decisions:
// - Department (enterprise extension): the user's PRIMARY department, by name, case-insensitive.
//   The shallowest department of that name is used (for a department-scoped token: inside its
//   subtree); if there is none, it is created at the top level (scoped token: as a child of the
//   token's department). Changing it moves the person: the new department becomes primary and the
//   previous primary membership is removed (for a scoped token only if it was inside its subtree).
//   PUT without a department removes the primary membership; for a scoped token the person stays
//   in (or is put into) the token's department instead, so that they stay visible to it.
// - Manager: manager.value must be the id of a user the client can see (400 invalidValue if it is
//   a well-formed id that does not exist); a value that cannot be a OneID id at all (e.g. an
//   employee number from another system) is ignored and no manager is set. A department-scoped
//   token does not see a manager outside its subtree (the attribute is left out) and cannot set
//   one; its writes that name no manager keep that hidden manager.
// - active: false suspends (ends every session and token at once), true on a suspended user
//   reactivates; a PUT without active leaves the status as it is.
// - DELETE deprovisions: sessions end, the id and audit history stay, the user disappears from
//   SCIM (404, not listed) and userName, emails and externalId are released for a new account.
// - Writes that change nothing (an identical PUT) write nothing and keep the version (ETag).
import type { Knex } from 'knex';
import type { Tx } from '../db/knex.ts';
import { AppError } from '../shared/errors.ts';
import { UsersService } from '../directory/users.service.ts';
import { DepartmentsService } from '../directory/departments.service.ts';
import { subtreePattern } from '../directory/departments.repo.ts';
import { bumpUserVersion, isUuid } from '../directory/users.repo.ts';
import type { ScimClient } from '../apps/scim-tokens.service.ts';
import type { ScimDeps } from './index.ts';
import { ScimError } from './errors.ts';
import { SCIM_ENTERPRISE_USER_SCHEMA, SCIM_USER_SCHEMA } from './filter-sql.ts';
import { projectResource } from './projection.ts';
import { listResponse, type ScimListParams } from './scim-list.ts';
import { parseEtagList, weakEtag, type ScimRequestContext, type ScimResourceOps, type ScimResult } from './types.ts';
import {
  currentName, displayNameFromParts, readUserResource, renderUser, scimFieldError, toCreateInput, toDesiredUser, toUpdateInput, userLocation,
  type DesiredUser, type ScimUserRecord,
} from './users.mapper.ts';
import { patchTouches, patchUserResource } from './users.patch.ts';
import { findScimUser, findVisibleUser, listScimUsers, lockScimUser } from './users.query.ts';
import { recordingRefusals } from './refusals.ts';

const ENT = SCIM_ENTERPRISE_USER_SCHEMA;

const notFound = (id: string): ScimError => new ScimError(404, `no User with id ${JSON.stringify(id.slice(0, 100))}`);

/** 412 unless If-Match is absent, "*", or lists the current version. */
export function checkIfMatch(ifMatch: string | undefined, version: number): void {
  const list = parseEtagList(ifMatch);
  if (!list || list.any || list.versions.includes(version)) return;
  throw new ScimError(412, `the resource has changed: its current ETag is ${weakEtag(version)}`);
}

/**
 * A person's admin roles are what their tokens can do in OneID's admin API, so setting the
 * password of someone who holds any would hand a SCIM client (or whoever holds its token) an
 * administrator's account. SCIM may change every other attribute of such a person (HR systems keep
 * administrators' profiles and deactivate leavers); their password is managed in the admin API.
 * Checked before anything is written: the whole request changes nothing.
 */
export function assertScimMaySetPassword(current: ScimUserRecord, desired: DesiredUser): void {
  if (desired.password === undefined || current.user.adminRoles.length === 0) return;
  throw new ScimError(403, "password: this user holds OneID admin roles, so SCIM cannot set or change their password; administrators' passwords are managed in OneID's admin API", undefined, 'user.admin_password_not_scim');
}

function result(status: number, rec: ScimUserRecord, baseUrl: string): ScimResult {
  return { status, body: renderUser(rec, baseUrl), location: userLocation(baseUrl, rec.user.id), etag: weakEtag(rec.user.version) };
}

/** Domain errors about a field are reported with the SCIM attribute's name. */
async function domain<T>(work: Promise<T>, field?: string): Promise<T> {
  try {
    return await work;
  } catch (err) {
    if (field && err instanceof AppError && err.kind === 'invalid_argument') {
      const detail = err.message.replace(/^[A-Za-z.]+: /, '');
      throw new ScimError(400, `${field}: ${detail}`, 'invalidValue');
    }
    throw scimFieldError(err);
  }
}

interface WriteContext {
  trx: Knex.Transaction;
  users: UsersService;
  departments: DepartmentsService;
}

const inScope = (path: string, scopePath: string | null): boolean => !scopePath || path.startsWith(scopePath);

export class ScimUsers implements ScimResourceOps {
  constructor(private readonly deps: ScimDeps) {}

  private transaction<T>(work: (w: WriteContext) => Promise<T>): Promise<T> {
    const { db, hasher } = this.deps.services;
    return db.transaction((trx) => work({ trx, users: new UsersService(trx, hasher), departments: new DepartmentsService(trx) }));
  }

  // ---- reads

  async get(id: string, rc: ScimRequestContext): Promise<ScimResult> {
    const rec = await findScimUser(this.deps.services.db, id, rc.client.departmentPath);
    if (!rec) throw notFound(id);
    return result(200, rec, rc.baseUrl);
  }

  async list(params: ScimListParams, rc: ScimRequestContext): Promise<Record<string, unknown>> {
    const { total, records } = await listScimUsers(this.deps.services.db, rc.client.departmentPath, params);
    const resources = records.map((r) => projectResource(renderUser(r, rc.baseUrl), SCIM_USER_SCHEMA, params.attributes, params.excludedAttributes));
    return listResponse(resources, total, params.startIndex);
  }

  // ---- writes

  async create(body: unknown, rc: ScimRequestContext): Promise<ScimResult> {
    const desired = toDesiredUser(readUserResource(body));
    const { db } = this.deps.services;
    // Reads first (the directory checks the manager again inside its transaction).
    const managerId = await this.resolveManager(db, desired.manager, rc.client);
    const department = desired.department !== null
      ? await this.findDepartment(db, desired.department, rc.client)
      : rc.client.departmentId ? { id: rc.client.departmentId } : undefined;
    const input = toCreateInput(desired, managerId);
    const provisioned = { scimAttributes: desired.extras as Record<string, unknown> };
    // Without a department, creating the user is one directory operation with its own
    // transaction; with one, the membership (and a new department) commit with the user or not at all.
    const user = !department
      ? await domain(this.deps.services.users.createUser(input, rc.actor, provisioned))
      : await this.transaction(async (w) => {
        const created = await domain(w.users.createUser(input, rc.actor, provisioned));
        const departmentId = await this.ensureDepartment(w, department, desired.department ?? '', rc);
        await domain(w.departments.addMember(departmentId, { userId: created.id, primary: true }, rc.actor));
        return created;
      });
    return result(201, await this.reload(user.id, rc), rc.baseUrl);
  }

  /** The stored user after a write (read after the commit, outside the audit log's lock). */
  private async reload(id: string, rc: ScimRequestContext): Promise<ScimUserRecord> {
    const rec = await findScimUser(this.deps.services.db, id, rc.client.departmentPath);
    if (!rec) throw notFound(id); // changed meanwhile by another request, e.g. deleted
    return rec;
  }

  async replace(id: string, body: unknown, rc: ScimRequestContext, ifMatch?: string): Promise<ScimResult> {
    await this.transaction(async (w) => {
      const current = await this.lock(w.trx, id, rc, ifMatch);
      const desired = toDesiredUser(readUserResource(body), currentName(current.user));
      if (desired.id !== undefined && desired.id.toLowerCase() !== id.toLowerCase()) {
        throw new ScimError(400, 'id is readOnly: the id in the body must be the id in the URL', 'mutability');
      }
      await this.apply(w, current, desired, rc);
    });
    return result(200, await this.reload(id, rc), rc.baseUrl);
  }

  async patch(id: string, body: unknown, rc: ScimRequestContext, ifMatch?: string): Promise<ScimResult> {
    await this.transaction(async (w) => {
      const current = await this.lock(w.trx, id, rc, ifMatch);
      const patched = patchUserResource(renderUser(current, rc.baseUrl), body);
      const displayNameFollowsParts = displayNameFromParts(current.user) && !patchTouches(body, 'displayName');
      const desired = toDesiredUser(readUserResource(patched), currentName(current.user), { displayNameFollowsParts });
      await this.apply(w, current, desired, rc);
    });
    return result(200, await this.reload(id, rc), rc.baseUrl);
  }

  async remove(id: string, rc: ScimRequestContext, ifMatch?: string): Promise<ScimResult> {
    await this.transaction(async (w) => {
      await this.lock(w.trx, id, rc, ifMatch);
      await domain(w.users.deprovisionAndRelease(id, rc.actor));
    });
    return { status: 204 };
  }

  // ---- helpers

  /** Locks the row of a user the client can see (404 otherwise), checks If-Match, loads it. */
  private async lock(trx: Knex.Transaction, id: string, rc: ScimRequestContext, ifMatch: string | undefined): Promise<ScimUserRecord> {
    const version = await lockScimUser(trx, id, rc.client.departmentPath);
    if (version === undefined) throw notFound(id);
    checkIfMatch(ifMatch, version);
    return (await findScimUser(trx, id, rc.client.departmentPath))!;
  }

  /**
   * Writes what differs between the stored user and the desired state. PUT and PATCH (also from
   * /Bulk) both end here, with the user's row locked, so the admin-password rule below holds for
   * every way a client can send a password.
   */
  private async apply(w: WriteContext, current: ScimUserRecord, desired: DesiredUser, rc: ScimRequestContext): Promise<void> {
    const id = current.user.id;
    assertScimMaySetPassword(current, desired);
    let managerId = await this.resolveManager(w.trx, desired.manager, rc.client);
    // A manager outside a scoped token's subtree is not shown to it (users.query.ts), so a PATCH
    // or PUT that names no manager leaves that one as it is; naming one in scope replaces it.
    if (managerId === null && rc.client.departmentPath && current.user.managerId !== null && current.manager === null) {
      managerId = current.user.managerId;
    }
    const move = await this.planDepartment(w.trx, current, desired.department, rc.client);
    const { input, scimAttributes } = toUpdateInput(desired, current.user, managerId);
    if (Object.keys(input).length > 0 || scimAttributes !== undefined) {
      await domain(w.users.updateUser(id, input, rc.actor, undefined, scimAttributes !== undefined ? { scimAttributes } : {}));
    }
    if (move) {
      if (move.target) {
        const departmentId = await this.ensureDepartment(w, move.target, desired.department ?? '', rc);
        await domain(w.departments.addMember(departmentId, { userId: id, primary: true }, rc.actor));
        if (move.remove && move.remove !== departmentId) await domain(w.departments.removeMember(move.remove, id, rc.actor));
      } else if (move.remove) {
        await domain(w.departments.removeMember(move.remove, id, rc.actor));
      }
      await bumpUserVersion(w.trx, id);
    }
    const status = current.user.status;
    if (desired.active === false && status === 'active') await domain(w.users.changeStatus(id, 'suspend', rc.actor));
    if (desired.active === true && status === 'suspended') await domain(w.users.changeStatus(id, 'reactivate', rc.actor));
  }

  private async resolveManager(trx: Tx, ref: string | null, client: ScimClient): Promise<string | null> {
    // A value that cannot be a OneID id (an identifier of another system) is ignored.
    if (ref === null || !isUuid(ref)) return null;
    const found = await findVisibleUser(trx, ref.toLowerCase(), client.departmentPath);
    if (!found) throw new ScimError(400, `${ENT}:manager.value: no User with id ${ref}`, 'invalidValue');
    return found.id;
  }

  /** The shallowest department with this name (in the token's subtree), or what to create. */
  private async findDepartment(trx: Tx, name: string, client: ScimClient): Promise<{ id?: string; parentId?: string | null }> {
    const q = trx('departments').whereRaw('lower(name) = lower(?)', [name]).orderBy([{ column: 'depth' }, { column: 'created_at' }, { column: 'id' }]).first<{ id: string } | undefined>('id');
    if (client.departmentPath) q.whereRaw("path like ? escape '\\'", [subtreePattern(client.departmentPath)]);
    const found = await q;
    return found ? { id: found.id } : { parentId: client.departmentId };
  }

  private async ensureDepartment(w: WriteContext, target: { id?: string; parentId?: string | null }, name: string, rc: ScimRequestContext): Promise<string> {
    if (target.id) return target.id;
    try {
      return (await domain(w.departments.createDepartment({ name, parentId: target.parentId ?? null }, rc.actor), `${ENT}:department`)).id;
    } catch (err) {
      // Created meanwhile by a concurrent request: use that one.
      if (err instanceof AppError && err.code === 'department.name_taken') {
        const again = await this.findDepartment(w.trx, name, rc.client);
        if (again.id) return again.id;
      }
      throw err;
    }
  }

  /**
   * What to change about the primary department, or undefined for nothing: `target` becomes the
   * primary department (found or to create), `remove` is a membership to remove.
   */
  private async planDepartment(trx: Knex.Transaction, current: ScimUserRecord, name: string | null, client: ScimClient)
    : Promise<{ target?: { id?: string; parentId?: string | null }; remove?: string } | undefined> {
    const now = current.department;
    const scope = client.departmentPath;
    if (name === null) {
      if (!scope) return now ? { remove: now.id } : undefined;
      if (now && inScope(now.path, scope)) return undefined;
      return { target: { id: client.departmentId! } };
    }
    if (now && now.name.toLowerCase() === name.toLowerCase() && inScope(now.path, scope)) return undefined;
    const target = await this.findDepartment(trx, name, client);
    if (now && target.id === now.id) return undefined;
    return { target, ...(now && inScope(now.path, scope) ? { remove: now.id } : {}) };
  }
}

/** The ops /Bulk runs for Users; the same code as the HTTP routes. */
export function createScimUserOps(deps: ScimDeps): ScimUsers {
  return recordingRefusals(deps.services.db, 'Users', new ScimUsers(deps));
}
