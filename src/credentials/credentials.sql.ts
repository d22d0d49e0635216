// Placeholder until credentials.repo.ts lands from the passkey work: the one lookup the password
// strategy needs.
import type { Knex } from 'knex';

export async function findCredentialOfUser(db: Knex | Knex.Transaction, userId: string, type: string): Promise<{ id: string } | undefined> {
  return db('credentials').where({ user_id: userId, type }).first('id');
}
