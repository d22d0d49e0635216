// The features that run in the background, in the order their consumers see each batch of events.
import type { BackgroundContext, BackgroundFeature } from './background.ts';
import { provisioningFeature } from '../provisioning/provisioning.jobs.ts';

export const BACKGROUND_FEATURES: ((ctx: BackgroundContext) => BackgroundFeature)[] = [provisioningFeature];
