export const money = (n) => `$${n.toFixed(2)}`;
