// node-smpp plays the operator's SMSC / USSD centre; the gateway binds to it as an ESME.
//
// usage: node smsc.js <service_code> <msisdn> [input...]
// Prints {"port":N} once listening. When the gateway binds, dials <service_code> as <msisdn>
// (deliver_sm, ussd_service_op 1, its_session_info [0x2A, 0]) and answers every screen with the
// next input (ussd_service_op 18), printing {"event":"ended"} at the end of the dialogue. When
// the gateway unbinds, prints the whole record and exits 0.
'use strict';
const smpp = require('smpp');
const { screen, ussd, emit, deadline } = require('./common');

const [code, msisdn, ...inputs] = process.argv.slice(2);
const out = { bind: null, screens: [], submit_seqs: [], unbound: false };
const timer = deadline(30000, out);

const server = smpp.createServer((session) => {
  let waiting = null;
  session.on('bind_transceiver', (pdu) => {
    out.bind = {
      system_id: pdu.system_id,
      password: pdu.password,
      interface_version: pdu.interface_version,
    };
    session.send(pdu.response({ system_id: 'node-smsc' }));
    dial(session, (f) => { waiting = f; });
  });
  session.on('enquire_link', (pdu) => session.send(pdu.response()));
  session.on('submit_sm', (pdu) => {
    out.submit_seqs.push(pdu.sequence_number);
    session.send(pdu.response({ message_id: 'n' + pdu.sequence_number }));
    if (waiting) {
      const w = waiting;
      waiting = null;
      w(pdu);
    }
  });
  session.on('unbind', (pdu) => {
    out.unbound = true;
    session.send(pdu.response());
    session.close();
    clearTimeout(timer);
    emit(out);
    server.close();
    process.exit(0);
  });
  session.on('error', (e) => { out.error = String(e); });
});

function dial(session, expect) {
  let step = 0;
  const send = (message, op) => {
    session.deliver_sm(ussd(msisdn, '123', message, op, [0x2a, step * 2]),
      (resp) => { out.deliver_sm_resp = resp.command_status; });
    expect((pdu) => {
      const s = screen(pdu);
      out.screens.push(s);
      if (s.end || step >= inputs.length) {
        emit({ event: 'ended' });
        return;
      }
      const next = inputs[step];
      step += 1;
      send(next, 0x12);
    });
  };
  send(code, 1);
}

server.listen(0, '127.0.0.1', () => emit({ port: server.address().port }));
