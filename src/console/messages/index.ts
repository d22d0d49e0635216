// The console's strings, one file per area so that each area's pages keep their words beside them.
import * as shell from './shell.ts';
import * as people from './people.ts';
import * as directory from './directory.ts';
import * as apps from './apps.ts';
import * as audit from './audit.ts';
import * as settings from './settings.ts';
import * as offboarding from './offboarding.ts';
import * as webhooks from './webhooks.ts';
import * as jobs from './jobs.ts';
import * as provisioning from './provisioning.ts';
import * as suites from './suites.ts';

export const en = {
  ...shell.en, ...people.en, ...directory.en, ...apps.en, ...audit.en, ...settings.en,
  ...offboarding.en, ...webhooks.en, ...jobs.en, ...provisioning.en, ...suites.en,
};

export const zhCN: Record<keyof typeof en, string> = {
  ...shell.zhCN, ...people.zhCN, ...directory.zhCN, ...apps.zhCN, ...audit.zhCN, ...settings.zhCN,
  ...offboarding.zhCN, ...webhooks.zhCN, ...jobs.zhCN, ...provisioning.zhCN, ...suites.zhCN,
};
