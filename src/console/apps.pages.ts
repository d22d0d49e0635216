// The console's apps pages.
import type { RegisterPages } from './pages.ts';

export const registerAppsPages: RegisterPages = () => {
  // Built in #20 by the apps area.
};
