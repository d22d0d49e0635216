import type { Knex } from 'knex';

export class DepartmentsService {
  constructor(readonly db: Knex) {}
}
