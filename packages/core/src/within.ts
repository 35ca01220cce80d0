/** The promise's value, or null when it has not settled within `ms` (the promise itself keeps running). */
export function within<T>(p: Promise<T>, ms: number): Promise<T | null> {
  return Promise.race([p, new Promise<null>((resolve) => setTimeout(() => resolve(null), ms).unref())]);
}
