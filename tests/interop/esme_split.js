// node-smpp plays an ESME (an aggregator) bound to two gateway nodes of a cluster: a receiver
// on the first node's listener, a transmitter on the second's. It submits a dialogue's messages
// on the transmitter only, so every screen can only come back through the first node.
//
// usage: node esme_split.js <receiver_port> <transmitter_port> <system_id> <password>
//                           <service_code> <msisdn> [input...]
// Submits the dial (ussd_service_op 1, its_session_info [0x12, 0]) once both are bound, then
// each next input (op 18) as each screen comes, and prints the record as one JSON line after
// the last screen: each screen with the bind it came on.
'use strict';
const smpp = require('smpp');
const { screen, ussd, emit, deadline } = require('./common');

const [rxPort, txPort, systemId, password, code, msisdn, ...inputs] = process.argv.slice(2);
const out = { bound: [], submit_statuses: [], screens: [], came_on: [] };
deadline(30000, out);
let step = 0;
let tx = null;

const rx = smpp.connect({ url: 'smpp://127.0.0.1:' + rxPort, auto_enquire_link_period: 1000 }, () => {
  rx.bind_receiver({ system_id: systemId, password, interface_version: 0x34 }, (pdu) => {
    out.bound.push(['receiver', pdu.command_status]);
    tx = smpp.connect({ url: 'smpp://127.0.0.1:' + txPort, auto_enquire_link_period: 1000 }, () => {
      tx.bind_transmitter({ system_id: systemId, password, interface_version: 0x34 }, (pdu2) => {
        out.bound.push(['transmitter', pdu2.command_status]);
        send(code, 1);
      });
    });
    tx.on('deliver_sm', (p) => {
      tx.send(p.response());
      out.came_on.push('transmitter');
    });
    tx.on('error', (e) => { out.error = String(e); });
  });
});

function send(message, op) {
  tx.submit_sm(ussd(msisdn, '123', message, op, [0x12, step * 2]),
    (resp) => out.submit_statuses.push(resp.command_status));
}

rx.on('deliver_sm', (pdu) => {
  rx.send(pdu.response());
  const s = screen(pdu);
  out.screens.push(s);
  out.came_on.push('receiver');
  if (s.end || step >= inputs.length) {
    emit(out);
    process.exit(0);
  }
  const next = inputs[step];
  step += 1;
  send(next, 0x12);
});
rx.on('error', (e) => { out.error = String(e); });
