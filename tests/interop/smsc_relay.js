// node-smpp plays one operator SMSC to which two gateway nodes of a cluster bind, the first as
// system_id gw1, the second as gw2 (one bind of the gateway's config, named alike on both
// nodes). It cuts gw1's connection right after gw1 acknowledged the first message of a
// dialogue, so the first screen can only come back through gw2, and refuses gw1's later binds.
//
// usage: node smsc_relay.js <service_code> <msisdn> [input...]
// Prints {"port":N} once listening. Once both have bound, dials <service_code> as <msisdn> on
// gw1 and sends each next input on gw2 (deliver_sm, ussd_service_op 1 then 18,
// its_session_info [0x2B, 2*step]); at the end of the dialogue prints {"event":"ended", ...}
// with each screen and the system_id it came back on. Then the first submit_sm that is not
// part of the dialogue (a push) is printed as {"event":"push", ...}, and it exits 0.
'use strict';
const smpp = require('smpp');
const { screen, ussd, emit, deadline } = require('./common');

const [code, msisdn, ...inputs] = process.argv.slice(2);
const out = { screens: [], answered_by: [], refused_binds: 0, ignored_on_cut: 0 };
const timer = deadline(40000, out);
const bound = {};
let cut = null;
let step = 0;
let ended = false;

const server = smpp.createServer((session) => {
  let id = null;
  session.on('bind_transceiver', (pdu) => {
    if (pdu.system_id === 'gw1' && cut) {
      out.refused_binds += 1;
      session.send(pdu.response({ command_status: smpp.ESME_RBINDFAIL }));
      return;
    }
    id = pdu.system_id;
    session.send(pdu.response({ system_id: 'node-smsc' }));
    bound[id] = session;
    if (bound.gw1 && bound.gw2 && !cut) send('gw1', code, 1);
  });
  session.on('enquire_link', (pdu) => session.send(pdu.response()));
  session.on('submit_sm', (pdu) => {
    if (session === cut) {
      // Read from the buffer after the cut: never answered, so never delivered.
      out.ignored_on_cut += 1;
      return;
    }
    session.send(pdu.response({ message_id: 'n' + pdu.sequence_number }));
    const s = screen(pdu);
    if (ended) {
      clearTimeout(timer);
      emit({ event: 'push', by: id, screen: s });
      server.close();
      process.exit(0);
    }
    out.answered_by.push(id);
    out.screens.push(s);
    if (s.end || step >= inputs.length) {
      ended = true;
      emit(Object.assign({ event: 'ended' }, out));
      return;
    }
    const next = inputs[step];
    step += 1;
    send('gw2', next, 0x12);
  });
  session.on('unbind', (pdu) => {
    session.send(pdu.response());
    session.close();
  });
  session.on('error', (e) => { out.error = String(e); });
});

function send(to, message, op) {
  const session = bound[to];
  session.deliver_sm(ussd(msisdn, '123', message, op, [0x2b, step * 2]), () => {
    // The first message is acknowledged: cut gw1 before its answer can come back on it.
    if (to === 'gw1' && !cut) {
      cut = session;
      session.destroy();
    }
  });
}

server.listen(0, '127.0.0.1', () => emit({ port: server.address().port }));
