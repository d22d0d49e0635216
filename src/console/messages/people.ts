// The people pages' strings (keys console.people.*).
export const en = {
  'console.people.title': 'people',
};

export const zhCN: Record<keyof typeof en, string> = {
  'console.people.title': 'people',
};
