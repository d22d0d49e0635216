import type { Knex } from 'knex';

export class AccessService {
  constructor(readonly db: Knex) {}
}
