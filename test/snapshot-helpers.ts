// Shared helpers for the snapshot store tests: payloads derived from a seed, so any mix-up of
// snapshots shows in a comparison, and a payload read back whole.
import type { SnapshotMeta, SnapshotStore } from '../src/log/snapshot-store.js';

export function payloadOf(seed: number, bytes: number): Buffer {
  const payload = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) payload[i] = (seed * 131 + i * 7 + (i >> 8)) & 0xff;
  return payload;
}

/** The payload of `meta`, read (and its digest checked) through a reader. */
export async function readPayload(store: SnapshotStore, meta: SnapshotMeta): Promise<Buffer> {
  const reader = await store.openReader(meta.index, meta.term);
  if (reader === undefined) throw new Error(`snapshot ${meta.fileName} is not in the store`);
  try {
    const chunks: Buffer[] = [];
    for await (const chunk of reader.payload()) chunks.push(chunk);
    return Buffer.concat(chunks);
  } finally {
    await reader.close();
  }
}
