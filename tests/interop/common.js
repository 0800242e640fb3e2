// Shared by the interop scripts: reading a USSD screen out of a node-smpp PDU, and a bounded
// lifetime so a broken run fails instead of hanging.
'use strict';

function text(field) {
  if (field === undefined || field === null) return '';
  if (Buffer.isBuffer(field)) return field.toString('latin1');
  if (typeof field === 'object' && field.message !== undefined) {
    return Buffer.isBuffer(field.message) ? field.message.toString('latin1') : field.message;
  }
  return String(field);
}

// The parts of a USSD PDU the Rust test asserts on.
function screen(pdu) {
  const its = pdu.its_session_info ? Array.from(pdu.its_session_info) : null;
  return {
    command: pdu.command,
    text: text(pdu.message_payload !== undefined ? pdu.message_payload : pdu.short_message),
    op: pdu.ussd_service_op === undefined ? null : pdu.ussd_service_op,
    its,
    umr: pdu.user_message_reference === undefined ? null : pdu.user_message_reference,
    data_coding: pdu.data_coding,
    esm_class: pdu.esm_class,
    service_type: pdu.service_type,
    source_addr: pdu.source_addr,
    destination_addr: pdu.destination_addr,
    // The profile under test (its_session_info) ends with op 17 and bit 0.
    end: pdu.ussd_service_op === 17 || (its !== null && (its[1] & 1) === 1),
  };
}

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function deadline(ms, out) {
  return setTimeout(() => {
    out.error = 'timed out';
    emit(out);
    process.exit(1);
  }, ms);
}

module.exports = { text, screen, emit, deadline };
