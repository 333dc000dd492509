// Positional arguments of the bench/ scripts (`npm run bench:… -- A B C`).

/** process.argv[position] as a whole number of at least 1 (fallback when absent); exits 2 naming the argument otherwise. */
export function countArgument(position: number, name: string, fallback: number): number {
  const value = Number(process.argv[position] ?? fallback);
  if (!Number.isSafeInteger(value) || value < 1) {
    console.error(`${name} must be a whole number of at least 1, not "${process.argv[position]}"`);
    process.exit(2);
  }
  return value;
}
