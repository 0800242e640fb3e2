// node-smpp plays one operator SMSC to which two gateway nodes of a cluster bind, the first
// as system_id gw1, the second as gw2. A dialogue the gateway opens (a network-initiated USSR,
// asked of the node bound as gw1) is answered by the subscriber through gw2 only, so its last
// screen comes from the node that did not open it.
//
// usage: node smsc_initiated.js <msisdn> [input...]
// Prints {"port":N} once listening and {"event":"bound"} once both have bound. Answers the
// gateway's first USSR request with each input in turn, always on gw2 (deliver_sm,
// ussd_service_op 18, its_session_info echoed), and prints {"event":"ended", ...} with every
// screen and the system_id it came on when one ends the dialogue (op 3 or 17, or the end bit).
'use strict';
const smpp = require('smpp');
const { screen, ussd, emit, deadline } = require('./common');

const [msisdn, ...inputs] = process.argv.slice(2);
const out = { screens: [], came_on: [] };
const timer = deadline(40000, out);
const bound = {};
let step = 0;

const server = smpp.createServer((session) => {
  let id = null;
  session.on('bind_transceiver', (pdu) => {
    id = pdu.system_id;
    session.send(pdu.response({ system_id: 'node-smsc' }));
    bound[id] = session;
    if (bound.gw1 && bound.gw2) emit({ event: 'bound' });
  });
  session.on('enquire_link', (pdu) => session.send(pdu.response()));
  session.on('submit_sm', (pdu) => {
    session.send(pdu.response({ message_id: 'n' + pdu.sequence_number }));
    const s = screen(pdu);
    out.screens.push(s);
    out.came_on.push(id);
    if (s.end || s.op === 3 || step >= inputs.length) {
      clearTimeout(timer);
      emit(Object.assign({ event: 'ended' }, out));
      return;
    }
    const next = inputs[step];
    step += 1;
    bound.gw2.deliver_sm(ussd(msisdn, s.source_addr, next, 18, [s.its[0], 0]));
  });
  session.on('unbind', (pdu) => {
    session.send(pdu.response());
    session.close();
  });
  session.on('error', (e) => { out.error = String(e); });
});

server.listen(0, '127.0.0.1', () => emit({ port: server.address().port }));
