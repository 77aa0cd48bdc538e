// A webhook receiver for the notification tests, as its own process (node:http): every request
// is appended to OUTFILE as one JSON line {method, url, headers, body}, and answered with STATUS.
//   node test/helpers/webhook-receiver.mjs PORT OUTFILE [STATUS]
import { appendFileSync } from 'node:fs';
import { createServer } from 'node:http';

const [port, outfile, status = '200'] = process.argv.slice(2);
const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const text = Buffer.concat(chunks).toString('utf8');
    let body;
    try { body = JSON.parse(text); } catch { body = text; }
    appendFileSync(outfile, `${JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body })}\n`);
    res.writeHead(Number(status)).end();
  });
});
server.listen(Number(port), '127.0.0.1', () => process.stdout.write('listening\n'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
