// The console's people pages.
import type { RegisterPages } from './pages.ts';

export const registerPeoplePages: RegisterPages = () => {
  // Built in #20 by the people area.
};
