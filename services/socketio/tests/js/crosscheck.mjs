// The reference parsers' side of tests/crosscheck.rs. Reads a JSON array of cases on stdin and
// prints one JSON array of answers: for each case, what the reference encoder makes of its
// description (`encoded`) and what the reference decoder makes of the text Herald's encoder
// produced (`decoded`), or, for a `reject` case, whether the reference decoder refuses it.
//
// Case kinds:
//   {kind: "eio", packet, text}         one Engine.IO packet, text form (binary as b + base64)
//   {kind: "payload", packets, text}    one polling payload
//   {kind: "sio", packet, text}         one Socket.IO packet
//   {kind: "sio-reject", text}          a Socket.IO packet text both sides must refuse
// Descriptions: Engine.IO {type, data?, binary? (base64)}; Socket.IO {type, nsp, id?, data?,
// attachments?}, binary attachments written as {"_placeholder":true,"num":n}.
import { readFileSync } from "node:fs";
import { encodePacket, decodePacket, encodePayload, decodePayload } from "engine.io-parser";
import { Encoder, Decoder } from "socket.io-parser";

function eioToRef(p) {
  if (p.binary !== undefined) return { type: "message", data: Buffer.from(p.binary, "base64") };
  return p.data === undefined ? { type: p.type } : { type: p.type, data: p.data };
}

function eioFromRef(p) {
  if (p.type === "error") throw new Error("reference decoder: error packet");
  if (Buffer.isBuffer(p.data)) return { type: "message", binary: p.data.toString("base64") };
  return p.data === undefined ? { type: p.type } : { type: p.type, data: p.data };
}

function eioEncode(p) {
  let out;
  encodePacket(eioToRef(p), false, (encoded) => (out = encoded));
  return out;
}

const isPlaceholder = (v) => v && typeof v === "object" && v._placeholder === true && typeof v.num === "number";

// Placeholders become buffers, so the reference encoder finds them and counts attachments.
function withBuffers(v) {
  if (isPlaceholder(v)) return Buffer.from([v.num]);
  if (Array.isArray(v)) return v.map(withBuffers);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, withBuffers(x)]));
  return v;
}

function sioEncode(p) {
  const binary = p.type === 5 || p.type === 6;
  // The reference encoder makes BINARY_EVENT/BINARY_ACK itself from an EVENT/ACK with buffers.
  const packet = { type: binary ? p.type - 3 : p.type, nsp: p.nsp };
  if (p.id !== undefined) packet.id = p.id;
  if (p.data !== undefined) packet.data = binary ? withBuffers(p.data) : p.data;
  const parts = new Encoder().encode(packet);
  return parts[0];
}

function sioDecode(text, attachments) {
  const decoder = new Decoder();
  let decoded = null;
  decoder.on("decoded", (p) => (decoded = p));
  decoder.add(text);
  // Binary packets wait for their attachments: feed one buffer per announced attachment.
  for (let i = 0; decoded === null && i < attachments; i++) decoder.add(Buffer.from([i]));
  if (decoded === null) throw new Error("reference decoder: packet not complete");
  const out = { type: decoded.type, nsp: decoded.nsp };
  if (decoded.id !== undefined) out.id = decoded.id;
  if (decoded.data !== undefined) out.data = decoded.data;
  if (attachments > 0) {
    // The reference turns binary packets back into EVENT/ACK once reassembled.
    out.type += 3;
    out.attachments = attachments;
    out.data = JSON.parse(JSON.stringify(out.data, (k, v) =>
      v && v.type === "Buffer" && Array.isArray(v.data) ? { _placeholder: true, num: v.data[0] } : v));
  }
  return out;
}

const cases = JSON.parse(readFileSync(0, "utf8"));
const answers = cases.map((c) => {
  try {
    switch (c.kind) {
      case "eio":
        return { encoded: eioEncode(c.packet), decoded: eioFromRef(decodePacket(c.text, "nodebuffer")) };
      case "payload": {
        let encoded;
        encodePayload(c.packets.map(eioToRef), (e) => (encoded = e));
        return { encoded, decoded: decodePayload(c.text, "nodebuffer").map(eioFromRef) };
      }
      case "sio":
        return { encoded: sioEncode(c.packet), decoded: sioDecode(c.text, c.packet.attachments ?? 0) };
      case "sio-reject":
        try {
          const d = new Decoder();
          d.on("decoded", () => {});
          d.add(c.text);
          return { rejected: false };
        } catch (e) {
          return { rejected: true, reason: String(e.message) };
        }
      default:
        return { error: "unknown case kind " + c.kind };
    }
  } catch (e) {
    return { error: String(e && e.message) };
  }
});
process.stdout.write(JSON.stringify(answers));
