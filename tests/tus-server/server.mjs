// The official tus server (@tus/server + @tus/file-store) on 127.0.0.1, for tests and benchmarks.
// Usage: node server.mjs DIR [PORT]; prints `listening on http://127.0.0.1:PORT/files/` when ready.
//
// Environment:
//   UPQ_TUS_DIR            storage folder when no DIR argument is given
//   UPQ_TUS_PORT           port when no PORT argument is given (default 0: the OS picks one)
//   UPQ_TUS_MAX_SIZE       largest upload in bytes (sent as Tus-Max-Size); unset: no limit
//   UPQ_TUS_EXPIRATION_MS  uploads expire this long after creation (the expiration extension)
//   UPQ_TUS_RELATIVE=1     answer POST with a relative Location
//   UPQ_TUS_WATCH_STDIN=0  keep running when standard input closes (scripts that track the PID)
// By default the process exits when its standard input closes, so it never outlives the test
// harness that started it.
import http from 'node:http';
import fs from 'node:fs';
import { Server } from '@tus/server';
import { FileStore } from '@tus/file-store';

const directory = process.argv[2] || process.env.UPQ_TUS_DIR;
if (!directory) {
  console.error('usage: node server.mjs DIR [PORT] (or UPQ_TUS_DIR)');
  process.exit(2);
}
fs.mkdirSync(directory, { recursive: true });
const port = Number(process.argv[3] || process.env.UPQ_TUS_PORT || 0);

const storeOptions = { directory };
if (process.env.UPQ_TUS_EXPIRATION_MS) {
  storeOptions.expirationPeriodInMilliseconds = Number(process.env.UPQ_TUS_EXPIRATION_MS);
}
const serverOptions = { path: '/files', datastore: new FileStore(storeOptions) };
if (process.env.UPQ_TUS_MAX_SIZE) {
  serverOptions.maxSize = Number(process.env.UPQ_TUS_MAX_SIZE);
}
if (process.env.UPQ_TUS_RELATIVE === '1') {
  serverOptions.relativeLocation = true;
}
const tus = new Server(serverOptions);

const server = http.createServer((req, res) => {
  tus.handle(req, res).catch((error) => {
    console.error(`tus server: ${error && error.stack ? error.stack : error}`);
    if (!res.headersSent) {
      res.statusCode = 500;
    }
    res.end();
  });
});
// Large PATCH bodies may take long on a throttled link; only idle sockets are timed out.
server.requestTimeout = 0;
server.headersTimeout = 60_000;

server.listen(port, '127.0.0.1', () => {
  const { port: bound } = server.address();
  process.stdout.write(`listening on http://127.0.0.1:${bound}/files/\n`);
});

function stop() {
  server.close();
  server.closeAllConnections();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (!process.stdin.isTTY && process.env.UPQ_TUS_WATCH_STDIN !== '0') {
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
}
