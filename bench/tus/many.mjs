// Uploads many files with tus-js-client (Node), N at a time, for bench/small.sh.
// Usage: node many.mjs ENDPOINT CONCURRENCY < paths (one a line); prints how many finished.
import fs from 'node:fs';
import path from 'node:path';
import * as tus from 'tus-js-client';

const [endpoint, concurrency] = process.argv.slice(2);
if (!endpoint || !concurrency) {
  console.error('usage: node many.mjs ENDPOINT CONCURRENCY < paths');
  process.exit(2);
}
const files = fs.readFileSync(0, 'utf8').split('\n').filter((line) => line.length > 0);

function upload(file) {
  return new Promise((resolve, reject) => {
    const upload = new tus.Upload(fs.createReadStream(file), {
      endpoint,
      uploadSize: fs.statSync(file).size,
      metadata: { filename: path.basename(file), filetype: 'video/mp4' },
      retryDelays: [0, 1000, 3000],
      onError: reject,
      onSuccess: resolve,
    });
    upload.start();
  });
}

let next = 0;
let done = 0;
async function worker() {
  while (next < files.length) {
    const file = files[next++];
    await upload(file);
    done++;
  }
}
try {
  await Promise.all(Array.from({ length: Number(concurrency) }, worker));
  console.log(done);
} catch (error) {
  console.error(`tus-js-client: ${error}`);
  process.exit(1);
}
