'use strict';
// A side app with a WebSocket endpoint at /ws (RFC 6455, text frames only).

const crypto = require('node:crypto');
const { startService } = require('@sample/common');

const HANDSHAKE_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

function textFrame(text) {
  const payload = Buffer.from(text, 'utf8');
  if (payload.length > 125) {
    throw new Error('this sample only sends short frames');
  }
  return Buffer.concat([Buffer.from([0x81, payload.length]), payload]);
}

// Decode one masked client text frame of up to 125 bytes.
function readClientText(buffer) {
  const length = buffer[1] & 0x7f;
  const mask = buffer.subarray(2, 6);
  const payload = Buffer.from(buffer.subarray(6, 6 + length));
  for (let i = 0; i < payload.length; i += 1) {
    payload[i] ^= mask[i % 4];
  }
  return payload.toString('utf8');
}

startService(
  'chat',
  (request, response, { build }) => {
    response.writeHead(200, { 'content-type': 'text/plain' });
    response.end(`chat ${build.revision}: connect a WebSocket to /ws\n`);
  },
  (request, socket, { build }) => {
    const key = request.headers['sec-websocket-key'];
    if (request.url !== '/ws' || !key) {
      socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
      return;
    }
    const accept = crypto.createHash('sha1').update(key + HANDSHAKE_GUID).digest('base64');
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    socket.write(textFrame(`hello from ${build.revision.slice(0, 12)}`));
    socket.on('data', (buffer) => {
      const opcode = buffer[0] & 0x0f;
      if (opcode === 0x8) {
        socket.end(Buffer.from([0x88, 0x00]));
        return;
      }
      socket.write(textFrame(`echo: ${readClientText(buffer)}`.slice(0, 125)));
    });
    socket.on('error', () => socket.destroy());
  },
);
