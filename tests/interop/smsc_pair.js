// node-smpp plays one operator SMSC to which two gateway nodes bind with the same account;
// it delivers the messages of one dialogue alternately on the two binds, as an SMSC that
// spreads a dialogue over its binds does.
//
// usage: node smsc_pair.js <service_code> <msisdn> [input...]
// Prints {"port":N} once listening. Once both nodes have bound, dials <service_code> as
// <msisdn> on the first bind, then sends each next input on the other bind than the last
// (deliver_sm, ussd_service_op 1 then 18, its_session_info [0x2A, 2*step]), printing
// {"event":"ended"} at the end of the dialogue. When both nodes have unbound, prints the
// whole record (each screen with the bind it came back on) and exits 0.
'use strict';
const smpp = require('smpp');
const { screen, ussd, emit, deadline } = require('./common');

const [code, msisdn, ...inputs] = process.argv.slice(2);
const out = { binds: 0, screens: [], delivered_on: [], answered_on: [], unbound: 0 };
const timer = deadline(30000, out);
const sessions = [];
let waiting = null;
let step = 0;

const server = smpp.createServer((session) => {
  session.on('bind_transceiver', (pdu) => {
    session.send(pdu.response({ system_id: 'node-smsc' }));
    sessions.push(session);
    out.binds += 1;
    if (sessions.length === 2) send(code, 1);
  });
  session.on('enquire_link', (pdu) => session.send(pdu.response()));
  session.on('submit_sm', (pdu) => {
    out.answered_on.push(sessions.indexOf(session));
    session.send(pdu.response({ message_id: 'n' + pdu.sequence_number }));
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
  session.on('unbind', (pdu) => {
    out.unbound += 1;
    session.send(pdu.response());
    session.close();
    if (out.unbound === 2) {
      clearTimeout(timer);
      emit(out);
      server.close();
      process.exit(0);
    }
  });
  session.on('error', (e) => { out.error = String(e); });
});

// Each message on the bind after the one the last went on.
function send(message, op) {
  const on = step % 2;
  out.delivered_on.push(on);
  sessions[on].deliver_sm(ussd(msisdn, '123', message, op, [0x2a, step * 2]));
}

server.listen(0, '127.0.0.1', () => emit({ port: server.address().port }));
