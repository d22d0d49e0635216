// The features that run in the background, in the order their consumers see each batch of events.
import type { BackgroundContext, BackgroundFeature } from './background.ts';
import { provisioningFeature } from '../provisioning/provisioning.jobs.ts';
import { webhooksFeature } from '../webhooks/webhooks.feature.ts';
import { offboardingFeature } from '../offboarding/offboarding.feature.ts';
import { suiteSignOutFeature } from '../oidc/suite-signout.ts';

export const BACKGROUND_FEATURES: ((ctx: BackgroundContext) => BackgroundFeature)[] = [
  provisioningFeature,
  offboardingFeature,
  suiteSignOutFeature,
  webhooksFeature,
];
