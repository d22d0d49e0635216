// The audit pages' strings (keys console.audit.*).
export const en = {
  'console.audit.title': 'audit',
};

export const zhCN: Record<keyof typeof en, string> = {
  'console.audit.title': 'audit',
};
