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

// The fields of a subscriber's USSD message (a deliver_sm from an SMSC, a submit_sm from an
// aggregator): from <msisdn> to <destination>, the text in GSM's default alphabet as latin1,
// ussd_service_op <op> and its_session_info <its> (two octets).
function ussd(msisdn, destination, message, op, its) {
  return {
    service_type: 'USSD',
    source_addr_ton: 1,
    source_addr_npi: 1,
    source_addr: msisdn,
    dest_addr_ton: 0,
    dest_addr_npi: 0,
    destination_addr: destination,
    esm_class: 0,
    data_coding: 0,
    short_message: Buffer.from(message, 'latin1'),
    ussd_service_op: op,
    its_session_info: Buffer.from(its),
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

module.exports = { text, screen, ussd, emit, deadline };
