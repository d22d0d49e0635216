// The composition root for domain services: the server and the CLI build the same set.
import type { Knex } from 'knex';
import type { Config } from './config.ts';
import { PasswordHasher } from './credentials/password.ts';
import { UsersService } from './directory/users.service.ts';
import { PasswordStrategy } from './credentials/password.strategy.ts';
import { SignInThrottle } from './credentials/signin-throttle.ts';
import { SessionsService } from './sessions/sessions.service.ts';
import { PasskeyStrategy, passkeyConfigFromIssuer } from './credentials/passkey.strategy.ts';
import { TotpStrategy } from './credentials/totp.strategy.ts';
import { RecoveryCodes } from './credentials/recovery.strategy.ts';
import type { MasterKey } from './keys/master-key.ts';
import { SetupService } from './directory/setup.service.ts';
import { AppsService } from './apps/apps.service.ts';
import { SamlAppsService } from './apps/saml-apps.service.ts';
import { SuitesService } from './apps/suites.service.ts';
import { AttributesService } from './directory/attributes.service.ts';
import { DepartmentsService } from './directory/departments.service.ts';
import { GroupsService } from './directory/groups.service.ts';
import { AccessService } from './access/assignments.service.ts';
import { ScimTokensService } from './apps/scim-tokens.service.ts';
import type { PasswordPolicySource } from './credentials/password-policy.ts';
import { PolicySettings } from './access/policy-settings.ts';
import { MethodsService } from './credentials/methods.service.ts';
import { SigningKeysService } from './keys/keys.service.ts';
import { samlCertificateSubject } from './keys/saml-keys.ts';
import { PasswordSetupLinks } from './directory/password-setup.service.ts';
import type { JobQueue } from './jobs/queue.ts';
import { WebhooksService } from './webhooks/webhooks.service.ts';
import { ProvisioningService } from './provisioning/provisioning.service.ts';
import { createLogger } from './shared/logger.ts';

export interface Services {
  db: Knex;
  config: Config;
  hasher: PasswordHasher;
  users: UsersService;
  passwords: PasswordStrategy;
  throttle: SignInThrottle;
  sessions: SessionsService;
  passkeys: PasskeyStrategy;
  /** Authenticator apps: their secrets are encrypted with the master key, so only with one. */
  totp: TotpStrategy | undefined;
  recovery: RecoveryCodes;
  setup: SetupService;
  apps: AppsService;
  /** SAML apps: the app record with its service-provider settings. */
  samlApps: SamlAppsService;
  /** Suites of apps: members, suite roles, suite assignments (kept as assignments rows) and suite grants. */
  suites: SuitesService;
  attributes: AttributesService;
  departments: DepartmentsService;
  groups: GroupsService;
  access: AccessService;
  scimTokens: ScimTokensService;
  /**
   * The password policy's minimum length and the default sign-in policy in force: the console's
   * stored values, else the environment's (PASSWORD_MIN_LENGTH, SIGNIN_POLICY_DEFAULT).
   */
  policies: PolicySettings;
  /** What a person may choose as their password (the minimum length in force, common passwords). */
  passwordPolicy: PasswordPolicySource;
  /** What an administrator sees of a person's sign-in methods, and removes. */
  methods: MethodsService;
  /** Listing and rotating the signing keys: they are encrypted with the master key, so only with one. */
  signingKeys: SigningKeysService | undefined;
  /** One-time links with which a person chooses their own password. */
  setupLinks: PasswordSetupLinks;
  /**
   * The job queue of a server node (dead letters, work an administrator asks for now); undefined
   * in the CLI and where no queue runs. The domain never uses it: it writes events.
   */
  jobs: JobQueue | undefined;
  /** Webhooks and their delivery log: their signing secrets are encrypted with the master key, so only with one. */
  webhooks: WebhooksService | undefined;
  /** Outbound provisioning targets: their tokens are encrypted with the master key, so only with one. */
  provisioning: ProvisioningService | undefined;
}

export function createServices(db: Knex, config: Config, masterKey?: MasterKey, jobs?: JobQueue): Services {
  const hasher = new PasswordHasher(config.password);
  const users = new UsersService(db, hasher);
  const policies = new PolicySettings(db, { passwordMinLength: config.passwordMinLength, signInPolicyDefault: config.signinPolicyDefault });
  return {
    db,
    config,
    hasher,
    users,
    passwords: new PasswordStrategy(db, hasher),
    throttle: new SignInThrottle(db, { perLogin: config.signinMaxFailures, perIp: config.signinMaxFailuresPerIp, windowSeconds: config.signinLockSeconds }),
    sessions: new SessionsService(db, { ttlSeconds: config.sessionTtlSeconds }),
    passkeys: new PasskeyStrategy(db, passkeyConfigFromIssuer(config.issuer, 'OneID', config.passkeyUserVerification)),
    totp: masterKey ? new TotpStrategy(db, masterKey, 'OneID') : undefined,
    recovery: new RecoveryCodes(db, hasher),
    setup: new SetupService(db, users),
    apps: new AppsService(db),
    samlApps: new SamlAppsService(db),
    suites: new SuitesService(db),
    attributes: new AttributesService(db),
    departments: new DepartmentsService(db),
    groups: new GroupsService(db),
    access: new AccessService(db),
    scimTokens: new ScimTokensService(db),
    policies,
    passwordPolicy: policies.passwords,
    methods: new MethodsService(db),
    signingKeys: masterKey ? new SigningKeysService(db, masterKey, samlCertificateSubject(config.issuer)) : undefined,
    setupLinks: new PasswordSetupLinks(db, hasher),
    jobs,
    webhooks: masterKey ? new WebhooksService(db, masterKey) : undefined,
    // Its drift report calls the app from the admin API; refusals are logged by the job side.
    provisioning: masterKey ? new ProvisioningService(db, masterKey, createLogger('silent')) : undefined,
  };
}
