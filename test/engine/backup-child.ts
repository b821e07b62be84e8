// Child process for the concurrent-backup test: backs up one source into a shared repository (a
// directory, or an s3:// location reached through the environment) and prints the result.
// Without arguments (as when `node --test` loads every file under test/) it does nothing.
import { Repository } from '../../src/engine/index.js';
import { openBackend } from '../../src/storage/open-backend.js';

const [location, password, source] = process.argv.slice(2);
if (location && password && source) {
  const repo = await Repository.open(openBackend(location), password);
  const result = await repo.backup({ sourcePath: source });
  await repo.commitSnapshot(result.snapshotId);
  process.stdout.write(JSON.stringify({ snapshotId: result.snapshotId, blobsNew: result.stats.blobsNew }));
}
