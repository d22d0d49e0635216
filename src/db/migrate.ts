// Migrations are listed here explicitly so that they load the same way under tsx, jest and the CLI.
import type { Knex } from 'knex';
import * as m20261129090000 from '../../migrations/20261129090000_create_foundation.ts';
import * as m20261129100000 from '../../migrations/20261129100000_create_directory_and_access.ts';
import * as m20261129130000 from '../../migrations/20261129130000_create_scim_tokens.ts';
import * as m20261129140000 from '../../migrations/20261129140000_create_rate_limits.ts';
import * as m20261130090000 from '../../migrations/20261130090000_alter_users_for_scim.ts';
import * as m20261130100000 from '../../migrations/20261130100000_alter_audit_events_async_chain.ts';
import * as m20261130110000 from '../../migrations/20261130110000_alter_groups_for_scim.ts';
import * as m20261130120000 from '../../migrations/20261130120000_add_users_visible_order_index.ts';
import * as m20261130130000 from '../../migrations/20261130130000_create_visible_user_counts.ts';
import * as m20261130140000 from '../../migrations/20261130140000_notify_app_changes.ts';
import * as m20261130150000 from '../../migrations/20261130150000_create_oidc_apply_writes.ts';
import * as m20261201090000 from '../../migrations/20261201090000_create_visible_user_blocks.ts';
import * as m20261201100000 from '../../migrations/20261201100000_index_oidc_payloads_by_uid_and_model.ts';
import * as m20261201110000 from '../../migrations/20261201110000_move_audit_chain_to_its_own_table.ts';
import * as m20261201120000 from '../../migrations/20261201120000_count_status_changes_per_row.ts';
import * as m20261201130000 from '../../migrations/20261201130000_add_apps_secret_rotated_at.ts';
import * as m20261206110000 from '../../migrations/20261206110000_add_users_sessions_ended_at.ts';
import * as m20261206120000 from '../../migrations/20261206120000_add_apps_allow_no_pkce.ts';
import * as m20261206120100 from '../../migrations/20261206120100_create_dpop_proofs.ts';
import * as m20261206130000 from '../../migrations/20261206130000_create_sign_in_names.ts';
import * as m20261206150000 from '../../migrations/20261206150000_add_audit_events_client_id_and_before.ts';
import * as m20261206200000 from '../../migrations/20261206200000_create_sessions_and_sign_in_methods.ts';
import * as m20261207000000 from '../../migrations/20261207000000_create_saml_service_providers.ts';
import * as m20261208100000 from '../../migrations/20261208100000_add_users_search_indexes.ts';
import * as m20261208100100 from '../../migrations/20261208100100_create_password_setup_links.ts';
import * as m20261209100000 from '../../migrations/20261209100000_create_events_outbox.ts';
import * as m20261209100100 from '../../migrations/20261209100100_create_provisioning.ts';
import * as m20261209110000 from '../../migrations/20261209110000_add_provisioning_full_sync_requested.ts';
import * as m20261209120000 from '../../migrations/20261209120000_create_webhooks.ts';
import * as m20261209130000 from '../../migrations/20261209130000_create_offboardings.ts';
import * as m20261210090000 from '../../migrations/20261210090000_create_suites.ts';
import * as m20261210100500 from '../../migrations/20261210100500_add_suite_events.ts';

interface Migration { up(knex: Knex): Promise<void>; down(knex: Knex): Promise<void> }

const MIGRATIONS: Record<string, Migration> = {
  '20261129090000_create_foundation': m20261129090000,
  '20261129100000_create_directory_and_access': m20261129100000,
  '20261129130000_create_scim_tokens': m20261129130000,
  '20261129140000_create_rate_limits': m20261129140000,
  '20261130090000_alter_users_for_scim': m20261130090000,
  '20261130100000_alter_audit_events_async_chain': m20261130100000,
  '20261130110000_alter_groups_for_scim': m20261130110000,
  '20261130120000_add_users_visible_order_index': m20261130120000,
  '20261130130000_create_visible_user_counts': m20261130130000,
  '20261130140000_notify_app_changes': m20261130140000,
  '20261130150000_create_oidc_apply_writes': m20261130150000,
  '20261201090000_create_visible_user_blocks': m20261201090000,
  '20261201100000_index_oidc_payloads_by_uid_and_model': m20261201100000,
  '20261201110000_move_audit_chain_to_its_own_table': m20261201110000,
  '20261201120000_count_status_changes_per_row': m20261201120000,
  '20261201130000_add_apps_secret_rotated_at': m20261201130000,
  '20261206110000_add_users_sessions_ended_at': m20261206110000,
  '20261206120000_add_apps_allow_no_pkce': m20261206120000,
  '20261206120100_create_dpop_proofs': m20261206120100,
  '20261206130000_create_sign_in_names': m20261206130000,
  '20261206150000_add_audit_events_client_id_and_before': m20261206150000,
  '20261206200000_create_sessions_and_sign_in_methods': m20261206200000,
  '20261207000000_create_saml_service_providers': m20261207000000,
  '20261208100000_add_users_search_indexes': m20261208100000,
  '20261208100100_create_password_setup_links': m20261208100100,
  '20261209100000_create_events_outbox': m20261209100000,
  '20261209100100_create_provisioning': m20261209100100,
  '20261209110000_add_provisioning_full_sync_requested': m20261209110000,
  '20261209120000_create_webhooks': m20261209120000,
  '20261209130000_create_offboardings': m20261209130000,
  '20261210090000_create_suites': m20261210090000,
  '20261210100500_add_suite_events': m20261210100500,
};

export const migrationSource: Knex.MigrationSource<string> = {
  getMigrations: async () => Object.keys(MIGRATIONS).sort(),
  getMigrationName: (name) => name,
  getMigration: async (name) => MIGRATIONS[name]!,
};

export const migratorConfig: Knex.MigratorConfig = { migrationSource, tableName: 'knex_migrations' };

const MIGRATION_LOCK = 727000;

/**
 * Nodes starting together on an empty database race to create knex's own tables (knex checks,
 * then creates), and one of them fails to start. An advisory lock held by a transaction on a
 * second connection lets one node migrate while the others wait. With a single connection
 * (PGlite, one process by the DATA_DIR lock) there is nothing to race and no second connection.
 */
export async function migrateLatest(db: Knex): Promise<string[]> {
  const latest = async (): Promise<string[]> => ((await db.migrate.latest(migratorConfig)) as [number, string[]])[1];
  if ((db.client.config as Knex.Config).pool?.max === 1) return latest();
  return db.transaction(async (trx) => {
    await trx.raw('select pg_advisory_xact_lock(?)', [MIGRATION_LOCK]);
    return latest();
  });
}

/** True when every known migration has been applied. */
export async function migrationsCurrent(db: Knex): Promise<boolean> {
  const [, pending] = (await db.migrate.list(migratorConfig)) as [unknown[], unknown[]];
  return pending.length === 0;
}
