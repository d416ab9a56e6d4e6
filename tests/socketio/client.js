// A Socket.IO client for the integration tests: connects with the handshake
// auth {token, after_position?} and prints every event it receives as one
// JSON line {"event", "data"} on stdout, until it is killed. Each line on
// stdin {"tag", "event", "data"} is emitted with an acknowledgement; the ack
// is printed as {"event": "ack", "data": {"tag", "ack"}}.
// Usage: node client.js <base url> <token> [after_position]
const { io } = require("socket.io-client");
const readline = require("readline");

const [url, token, after] = process.argv.slice(2);
const auth = { token };
if (after !== undefined) auth.after_position = Number(after);

const socket = io(url, { auth, transports: ["websocket"], reconnection: false });
const print = (event, data) => process.stdout.write(JSON.stringify({ event, data }) + "\n");

socket.onAny((event, data) => print(event, data));
socket.on("connect_error", (error) => {
  print("connect_error", { message: error.message });
  process.exit(1);
});
socket.on("disconnect", (reason) => print("disconnect", { reason }));

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const { tag, event, data } = JSON.parse(line);
  socket.timeout(10000).emit(event, data, (error, ack) => {
    print("ack", error ? { tag, error: String(error) } : { tag, ack });
  });
});
