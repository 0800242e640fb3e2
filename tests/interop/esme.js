// node-smpp plays an ESME (an aggregator) binding to the gateway's SMSC-role listener.
//
// usage: node esme.js <port> <system_id> <password> <service_code> <msisdn> [input...]
// First binds with a wrong password (expects ESME_RINVPASWD), then binds properly, submits
// the dial (submit_sm, ussd_service_op 1, its_session_info [0x11, 0]), answers each
// deliver_sm screen with deliver_sm_resp and the next input, unbinds after the last screen,
// and prints the record as one JSON line.
'use strict';
const smpp = require('smpp');
const { screen, ussd, emit, deadline } = require('./common');

const [port, systemId, password, code, msisdn, ...inputs] = process.argv.slice(2);
const url = 'smpp://127.0.0.1:' + port;
const out = { bad_bind_status: null, bind_status: null, submit_statuses: [], screens: [] };
deadline(30000, out);

function badBind(then) {
  const s = smpp.connect({ url }, () => {
    s.bind_transceiver({ system_id: systemId, password: 'wrong', interface_version: 0x34 }, (pdu) => {
      out.bad_bind_status = pdu.command_status;
      s.destroy();
      then();
    });
  });
  s.on('error', (e) => { out.bad_bind_error = String(e); });
}

function run() {
  const session = smpp.connect({ url, auto_enquire_link_period: 1000 }, () => {
    session.bind_transceiver({ system_id: systemId, password, interface_version: 0x34 }, (pdu) => {
      out.bind_status = pdu.command_status;
      if (pdu.command_status !== 0) {
        emit(out);
        process.exit(1);
      }
      send(code, 1);
    });
  });
  let step = 0;
  const send = (message, op) => {
    session.submit_sm(ussd(msisdn, '123', message, op, [0x11, step * 2]),
      (resp) => out.submit_statuses.push(resp.command_status));
  };
  session.on('deliver_sm', (pdu) => {
    session.send(pdu.response());
    const s = screen(pdu);
    out.screens.push(s);
    if (s.end || step >= inputs.length) {
      session.unbind((resp) => {
        out.unbind_status = resp.command_status;
        session.close();
        emit(out);
        process.exit(0);
      });
      return;
    }
    const next = inputs[step];
    step += 1;
    send(next, 0x12);
  });
  session.on('error', (e) => { out.error = String(e); });
}

badBind(run);
