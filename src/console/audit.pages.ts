// The console's audit pages.
import type { RegisterPages } from './pages.ts';

export const registerAuditPages: RegisterPages = () => {
  // Built in #20 by the audit area.
};
