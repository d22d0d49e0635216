// `oneid assignments ...`, `oneid app-roles ...` and `oneid apps list|get|rotate-secret|delete`
import { command, UsageError, type CommandDef } from './command.ts';
import type { App } from '../apps/apps.repo.ts';
import type { SamlServiceProvider } from '../apps/saml-providers.repo.ts';
import { summariseCertificate } from '../saml/certificates.ts';
import { isSignInPolicy, SIGN_IN_POLICIES, type SignInPolicy } from '../access/signin-policy.ts';

const app = (a: App) => ({
  id: a.id, name: a.name, protocol: a.protocol, client_id: a.clientId, access: a.access, first_party: a.firstParty,
  redirect_uris: a.oidc.redirect_uris ?? [], grant_types: a.oidc.grant_types ?? [], admin_roles: a.adminRoles,
  id_token_alg: a.oidc.id_token_signed_response_alg ?? 'RS256', allow_no_pkce: a.allowNoPkce,
  signin_policy: a.signInPolicy, suite_signin_policy: a.suiteSignInPolicy, api_audience: a.apiAudience, authorization_server: a.authorizationServer,
  version: a.version,
});

/** A SAML app's SP settings as the CLI prints them: certificates by fingerprint and expiry. */
const saml = (sp: SamlServiceProvider) => ({
  entity_id: sp.entityId,
  acs_urls: sp.acsUrls.map((u) => ({ location: u.location, binding: u.binding, index: u.index, is_default: u.isDefault })),
  slo_url: sp.sloUrl, slo_binding: sp.sloBinding, name_id_format: sp.nameIdFormat, attribute_mapping: sp.attributeMapping,
  sign_response: sp.signResponse, sign_assertion: sp.signAssertion, want_authn_requests_signed: sp.wantAuthnRequestsSigned,
  encrypt_assertions: sp.encryptAssertions,
  signing_certificates: sp.signingCertificates.map(certificate),
  encryption_certificate: sp.encryptionCertificate ? certificate(sp.encryptionCertificate) : null,
});

const certificate = (der: string) => {
  const c = summariseCertificate(der);
  return { sha256: c.sha256, subject: c.subject, not_after: c.notAfter };
};

/** One app as `oneid apps get` prints it: a SAML app with its SP settings (saml: null for OIDC apps). */
export const appWithSaml = (a: App, sp?: SamlServiceProvider) => ({ ...app(a), saml: sp ? saml(sp) : null });

/** --signin-policy: one of the levels, or `default` (null: the app follows SIGNIN_POLICY_DEFAULT). */
export const signInPolicyFlag = {
  type: 'string', value: `${SIGN_IN_POLICIES.join('|')}|default`, field: 'signInPolicy',
  help: 'how strongly people must have signed in to use it; default follows SIGNIN_POLICY_DEFAULT',
} as const;

/** --api-audience: the aud of access tokens for the app's own API; `none` clears it. */
export const apiAudienceFlag = {
  type: 'string', value: 'URI', field: 'apiAudience',
  help: "the audience (aud) of access tokens for the app's own API, e.g. https://crm.example.com/api (update: none clears it)",
} as const;

/** --authorization-server: the issuer of the app's own authorization server; `none` clears it. */
export const authorizationServerFlag = {
  type: 'string', value: 'ISSUER', field: 'authorizationServer',
  help: "the issuer URL of the app's own authorization server, for ID-JAGs (update: none clears it)",
} as const;

const orNone = (value: string | undefined): string | null | undefined => (value === 'none' ? null : value);

export function parseSignInPolicyFlag(value: string): SignInPolicy | null {
  if (value === 'default') return null;
  if (!isSignInPolicy(value)) throw new UsageError(`--signin-policy must be ${SIGN_IN_POLICIES.join(', ')} or default`);
  return value;
}

const appFlag = { type: 'id', required: true, value: 'APP_ID', help: 'the app (its id, not its client_id)', field: 'appId' } as const;

/** Who an assignment (of an app, or of a suite) is for: exactly one of these three. */
export const principalFlags = {
  user: { type: 'id', value: 'USER_ID', help: 'assign one person', field: 'principalId' },
  group: { type: 'id', value: 'GROUP_ID', help: 'assign everyone in a group', field: 'principalId' },
  department: { type: 'id', value: 'DEPARTMENT_ID', help: 'assign everyone in a department', field: 'principalId' },
  'include-subdepartments': { type: 'boolean', help: 'with --department: the departments under it too' },
} as const;

/** The principal the flags name; a usage error unless exactly one is given. */
export function principalOf(o: { user?: string; group?: string; department?: string; 'include-subdepartments'?: boolean }) {
  const principals = (['user', 'group', 'department'] as const).filter((p) => o[p] !== undefined);
  if (principals.length !== 1) throw new UsageError('give exactly one of --user, --group or --department');
  const principalType = principals[0]!;
  return { principalType, principalId: o[principalType]!, includeSubdepartments: o['include-subdepartments'] };
}

export const accessCommands: Record<string, CommandDef> = {
  'assignments create': command({
    summary: 'Give a person, a group or a department access to an app, optionally with roles.',
    options: {
      app: appFlag,
      ...principalFlags,
      role: { type: 'string', multiple: true, value: 'KEY', help: 'an app role to give (its key)', field: 'roleKeys' },
    },
    run: (o, { services, actor }) => {
      return services.access.createAssignment(o.app, { ...principalOf(o), roleKeys: o.role }, actor);
    },
  }),
  'assignments list': command({
    summary: 'List who is assigned to an app.',
    options: { app: appFlag },
    run: async (o, { services }) => {
      const items = [];
      let after: { createdAt: string; id: string } | undefined;
      for (;;) {
        const rows = await services.access.listAssignments({ appId: o.app, after, limit: 500 });
        items.push(...rows);
        const last = rows[rows.length - 1];
        if (rows.length < 500 || !last) break;
        after = { createdAt: new Date(last.createdAt).toISOString(), id: last.id };
      }
      return { items };
    },
  }),
  'assignments delete': command({
    summary: 'Remove an assignment (its people lose that access unless another assignment gives it).',
    options: { id: { type: 'id', required: true, value: 'ASSIGNMENT_ID', help: 'the assignment' } },
    run: async (o, { services, actor }) => {
      await services.access.deleteAssignment(o.id, actor);
      return { id: o.id, deleted: true };
    },
  }),
  'app-roles create': command({
    summary: 'Define a role in an app (sent to the app in the roles claim).',
    options: {
      app: appFlag,
      key: { type: 'string', required: true, value: 'KEY', help: 'the role\'s stable key, as the app sees it' },
      name: { type: 'string', required: true, value: 'NAME', help: 'its display name' },
      description: { type: 'string', value: 'TEXT', help: 'what the role allows' },
    },
    run: (o, { services, actor }) => services.apps.createRole(o.app, { key: o.key, name: o.name, description: o.description }, actor),
  }),
  'app-roles list': command({
    summary: 'List the roles of an app.',
    options: { app: appFlag },
    run: async (o, { services }) => ({ items: await services.apps.listRoles(o.app) }),
  }),
  'app-roles delete': command({
    summary: 'Delete a role of an app.',
    options: { app: appFlag, id: { type: 'id', required: true, value: 'ROLE_ID', help: 'the role' } },
    run: async (o, { services, actor }) => {
      await services.apps.deleteRole(o.app, o.id, actor);
      return { id: o.id, deleted: true };
    },
  }),
  'apps list': command({
    summary: 'List the registered apps.',
    options: {},
    run: async (_o, { services }) => {
      const items = [];
      let after: { createdAt: string; id: string } | undefined;
      for (;;) {
        const rows = await services.apps.listApps({ after, limit: 500 });
        items.push(...rows.map(app));
        const last = rows[rows.length - 1];
        if (rows.length < 500 || !last) break;
        after = { createdAt: new Date(last.createdAt).toISOString(), id: last.id };
      }
      return { items };
    },
  }),
  'apps get': command({
    summary: 'Show one app.',
    options: { id: { type: 'id', required: true, value: 'APP_ID', help: 'the app' } },
    run: async (o, { services }) => {
      const found = await services.apps.getApp(o.id);
      return found.protocol === 'saml' ? appWithSaml(found, (await services.samlApps.getSamlApp(o.id)).sp) : appWithSaml(found);
    },
  }),
  'apps update': command({
    summary: 'Change an app\'s settings: its sign-in policy, its API audience, its own authorization server.',
    details: 'Prints the app as `oneid apps get` does. The change reaches every OneID node at once.',
    options: {
      id: { type: 'id', required: true, value: 'APP_ID', help: 'the app' },
      'signin-policy': signInPolicyFlag,
      'api-audience': apiAudienceFlag,
      'authorization-server': authorizationServerFlag,
    },
    run: async (o, { services, actor }) => {
      if (o['signin-policy'] === undefined && o['api-audience'] === undefined && o['authorization-server'] === undefined) {
        throw new UsageError('missing --signin-policy, --api-audience or --authorization-server (give at least one)');
      }
      return app(await services.apps.updateApp(o.id, {
        ...(o['signin-policy'] !== undefined ? { signInPolicy: parseSignInPolicyFlag(o['signin-policy']) } : {}),
        ...(o['api-audience'] !== undefined ? { apiAudience: orNone(o['api-audience']) } : {}),
        ...(o['authorization-server'] !== undefined ? { authorizationServer: orNone(o['authorization-server']) } : {}),
      }, actor));
    },
  }),
  'apps rotate-secret': command({
    summary: 'Give an app a new client secret (printed once); the old one stops working.',
    options: { id: { type: 'id', required: true, value: 'APP_ID', help: 'the app' } },
    run: async (o, { services, actor }) => {
      const rotated = await services.apps.rotateSecret(o.id, actor);
      return { id: rotated.app.id, client_id: rotated.app.clientId, client_secret: rotated.client_secret };
    },
  }),
  'apps delete': command({
    summary: 'Delete an app: its tokens stop working.',
    options: { id: { type: 'id', required: true, value: 'APP_ID', help: 'the app' } },
    run: async (o, { services, actor }) => {
      await services.apps.deleteApp(o.id, actor);
      return { id: o.id, deleted: true };
    },
  }),
  'users entitlements': command({
    summary: 'Show which apps a person may use, or their access and roles in one app.',
    options: {
      id: { type: 'id', required: true, value: 'USER_ID', help: 'the person' },
      app: { type: 'id', value: 'APP_ID', help: 'only this app' },
    },
    run: async (o, { services }) => {
      if (o.app) return { userId: o.id, appId: o.app, ...(await services.access.entitlementsOf(o.id, o.app)) };
      return { items: await services.access.entitledAppsOf(o.id) };
    },
  }),
};
