// The console's directory pages.
import type { RegisterPages } from './pages.ts';

export const registerDirectoryPages: RegisterPages = () => {
  // Built in #20 by the directory area.
};
