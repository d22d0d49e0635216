import type { Knex } from 'knex';

export class GroupsService {
  constructor(readonly db: Knex) {}
}
