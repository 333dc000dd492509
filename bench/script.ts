// What the bench/ scripts share: their positional arguments (`npm run bench:… -- A B C`) and
// the median they report of repeated runs.

/** process.argv[position] as a whole number of at least 1 (fallback when absent); exits 2 naming the argument otherwise. */
export function countArgument(position: number, name: string, fallback: number): number {
  const value = Number(process.argv[position] ?? fallback);
  if (!Number.isSafeInteger(value) || value < 1) {
    console.error(`${name} must be a whole number of at least 1, not "${process.argv[position]}"`);
    process.exit(2);
  }
  return value;
}

/** The middle value (the mean of the two middle ones for an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
