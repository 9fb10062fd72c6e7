// Uploads one file with tus-js-client (Node), for bench/tus.sh.
// Usage: node tus-js-client.mjs FILE ENDPOINT [CHUNK_BYTES]; prints the upload URL when done.
// Without CHUNK_BYTES tus-js-client uses its own default (one PATCH for the whole file).
import fs from 'node:fs';
import path from 'node:path';
import * as tus from 'tus-js-client';

const [file, endpoint, chunk] = process.argv.slice(2);
if (!file || !endpoint) {
  console.error('usage: node tus-js-client.mjs FILE ENDPOINT [CHUNK_BYTES]');
  process.exit(2);
}
const upload = new tus.Upload(fs.createReadStream(file), {
  endpoint,
  chunkSize: chunk ? Number(chunk) : Infinity,
  metadata: { filename: path.basename(file), filetype: 'video/mp4' },
  retryDelays: [0, 1000, 3000],
  onError(error) {
    console.error(`tus-js-client: ${error}`);
    process.exit(1);
  },
  onSuccess() {
    console.log(upload.url);
  },
});
upload.start();
