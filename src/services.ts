// The composition root for domain services: the server and the CLI build the same set.
import type { Knex } from 'knex';
import type { Config } from './config.ts';
import { PasswordHasher } from './credentials/password.ts';
import { UsersService } from './directory/users.service.ts';
import { SetupService } from './directory/setup.service.ts';
import { AppsService } from './apps/apps.service.ts';
import { AttributesService } from './directory/attributes.service.ts';

export interface Services {
  db: Knex;
  config: Config;
  hasher: PasswordHasher;
  users: UsersService;
  setup: SetupService;
  apps: AppsService;
  attributes: AttributesService;
}

export function createServices(db: Knex, config: Config): Services {
  const hasher = new PasswordHasher(config.password);
  const users = new UsersService(db, hasher);
  return {
    db,
    config,
    hasher,
    users,
    setup: new SetupService(db, users),
    apps: new AppsService(db),
    attributes: new AttributesService(db),
  };
}
