// A Socket.IO subscriber for the integration tests: connects with the
// handshake auth {token, after_position?} and prints every event it receives
// as one JSON line {"event", "data"} on stdout, until it is killed.
// Usage: node client.js <base url> <token> [after_position]
const { io } = require("socket.io-client");

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
