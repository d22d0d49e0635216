import type { Knex } from 'knex';

// DPoP proofs (RFC 9449) accepted by OneID's own APIs, kept until they are too old to be accepted
// again, so that a replayed proof is refused on every node. Keyed by a hash of the key thumbprint
// and the proof's jti; rows clean themselves up as new proofs arrive (admin/dpop.ts).
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('dpop_proofs', (t) => {
    t.text('id').primary().comment('SHA-256 of the proof key thumbprint and the jti');
    t.timestamp('expires_at', { useTz: true }).notNullable();
    t.index(['expires_at'], 'dpop_proofs__expires_at');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('dpop_proofs');
}
