// Child process for the concurrent-backup test: backs up one source into a shared repository and
// prints the result. Without arguments (as when `node --test` loads every file under test/) it does nothing.
import { Repository } from '../../src/engine/index.js';
import { LocalBackend } from '../../src/storage/local/local-backend.js';

const [repoDir, password, source] = process.argv.slice(2);
if (repoDir && password && source) {
  const repo = await Repository.open(new LocalBackend(repoDir), password);
  const result = await repo.backup({ sourcePath: source });
  await repo.commitSnapshot(result.snapshotId);
  process.stdout.write(JSON.stringify({ snapshotId: result.snapshotId, blobsNew: result.stats.blobsNew }));
}
