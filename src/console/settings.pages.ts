// The console's settings pages.
import type { RegisterPages } from './pages.ts';

export const registerSettingsPages: RegisterPages = () => {
  // Built in #20 by the settings area.
};
