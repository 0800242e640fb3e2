//! The SMPP front byte for byte, over raw TCP, with PDUs written by hand (not by rusmpp): the
//! listener's bind state machine and credentials, generic_nack for unknown and malformed
//! PDUs (the connection lives on), over-length PDUs refused, its_session_info echoed exactly,
//! data_sm with message_payload, and the ESME side's bind, replies, keep-alive and reconnect.
//! Issue 19's attacks on the listener: answers on the transceiver the hop came on, USSD from a
//! transmitter, undeliverable answers, and log lines forged with peer text.

mod common;

use common::Sandbox;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ECHO: &str = include_str!("fixtures/core/flows/echo.yaml");

const BIND_TRX: u32 = 0x09;
const SUBMIT_SM: u32 = 0x04;
const DELIVER_SM: u32 = 0x05;
const UNBIND: u32 = 0x06;
const ENQUIRE_LINK: u32 = 0x15;
const DATA_SM: u32 = 0x103;
const RESP: u32 = 0x8000_0000;

fn pdu(id: u32, status: u32, seq: u32, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(16 + body.len() as u32).to_be_bytes());
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&status.to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn c(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn tlv(tag: u16, value: &[u8]) -> Vec<u8> {
    let mut v = tag.to_be_bytes().to_vec();
    v.extend_from_slice(&(value.len() as u16).to_be_bytes());
    v.extend_from_slice(value);
    v
}

/// A submit_sm / deliver_sm body (they share the layout).
fn sm(src: (u8, u8, &str), dst: (u8, u8, &str), dc: u8, text: &[u8], tlvs: &[Vec<u8>]) -> Vec<u8> {
    let mut v = c("USSD");
    v.extend([src.0, src.1]);
    v.extend(c(src.2));
    v.extend([dst.0, dst.1]);
    v.extend(c(dst.2));
    // esm_class, protocol_id, priority_flag, schedule, validity, registered_delivery,
    // replace_if_present, data_coding, sm_default_msg_id, sm_length.
    v.extend([0, 0, 0, 0, 0, 0, 0, dc, 0, text.len() as u8]);
    v.extend_from_slice(text);
    tlvs.iter().for_each(|t| v.extend(t));
    v
}

fn bind_body(id: &str, pw: &str) -> Vec<u8> {
    let mut v = c(id);
    v.extend(c(pw));
    v.extend(c(""));
    v.extend([0x34, 0, 0]);
    v.extend(c(""));
    v
}

type Pdu = (u32, u32, u32, Vec<u8>);
type Step = (&'static [u8], u8, [u8; 2], &'static [u8], u8, [u8; 2]);

/// Reads one PDU (5 s at most); `None` on end of stream.
async fn read(s: &mut TcpStream) -> Option<Pdu> {
    let fut = async {
        let mut head = [0u8; 16];
        s.read_exact(&mut head).await.ok()?;
        let w = |i: usize| u32::from_be_bytes(head[i..i + 4].try_into().unwrap());
        let mut body = vec![0u8; w(0) as usize - 16];
        s.read_exact(&mut body).await.ok()?;
        Some((w(4), w(8), w(12), body))
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .expect("a PDU within 5 s")
}

/// Reads PDUs, answering enquire_link, until one that is not an enquire_link.
async fn next(s: &mut TcpStream) -> Pdu {
    loop {
        let p = read(s).await.expect("connection open");
        if p.0 == ENQUIRE_LINK {
            s.write_all(&pdu(ENQUIRE_LINK | RESP, 0, p.2, &[]))
                .await
                .unwrap();
            continue;
        }
        return p;
    }
}

async fn send(s: &mut TcpStream, bytes: &[u8]) {
    s.write_all(bytes).await.unwrap();
}

const LISTENER: &str = "[smpp.listener]\nlisten = \"127.0.0.1:0\"\n[[smpp.listener.peers]]\nsystem_id = \"agg\"\npassword = \"pw\"\n[[smpp.listener.peers]]\nsystem_id = \"dsm\"\npassword = \"pw\"\nprofile = \"data_sm\"\n";

fn sandbox(smpp: &str) -> Sandbox {
    Sandbox::new(
        &format!("[[routes]]\nservice_code = \"*384*1#\"\nflow = \"echo\"\n{smpp}"),
        &[("echo", ECHO)],
    )
}

/// What the gateway answers every bind with (system_id, sc_interface_version 3.4).
fn bind_resp_body() -> Vec<u8> {
    let mut v = c("ussd-gateway");
    v.extend(tlv(0x0210, &[0x34]));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_enforces_bind_state_and_answers_bad_input() {
    let sb = sandbox(LISTENER);
    let gw = sb.start().await;
    let addr = gw.smpp().unwrap().listener_addr().unwrap();
    let mut s = TcpStream::connect(addr).await.unwrap();
    // Before bind: submit_sm is refused with ESME_RINVBNDSTS; enquire_link is answered.
    send(
        &mut s,
        &pdu(
            SUBMIT_SM,
            0,
            1,
            &sm((1, 1, "254700000001"), (0, 0, "384"), 0, b"*384*1#", &[]),
        ),
    )
    .await;
    assert_eq!(
        read(&mut s).await.unwrap(),
        (SUBMIT_SM | RESP, 0x04, 1, c(""))
    );
    send(&mut s, &pdu(ENQUIRE_LINK, 0, 2, &[])).await;
    assert_eq!(
        read(&mut s).await.unwrap(),
        (ENQUIRE_LINK | RESP, 0, 2, vec![])
    );
    // Credentials: a refused bind is answered late, later for each recent refusal from the
    // same address (0.5 s, then 1 s), and its connection is closed.
    let started = std::time::Instant::now();
    send(&mut s, &pdu(BIND_TRX, 0, 3, &bind_body("nobody", "pw"))).await;
    assert_eq!(
        read(&mut s).await.unwrap(),
        (BIND_TRX | RESP, 0x0F, 3, bind_resp_body())
    );
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert_eq!(read(&mut s).await, None, "closed after a refused bind");
    let mut s = TcpStream::connect(addr).await.unwrap();
    let started = std::time::Instant::now();
    send(&mut s, &pdu(BIND_TRX, 0, 4, &bind_body("agg", "bad"))).await;
    assert_eq!(
        read(&mut s).await.unwrap(),
        (BIND_TRX | RESP, 0x0E, 4, bind_resp_body())
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(read(&mut s).await, None, "closed after a refused bind");
    let mut s = TcpStream::connect(addr).await.unwrap();
    send(&mut s, &pdu(BIND_TRX, 0, 5, &bind_body("agg", "pw"))).await;
    assert_eq!(
        read(&mut s).await.unwrap(),
        (BIND_TRX | RESP, 0, 5, bind_resp_body())
    );
    send(&mut s, &pdu(BIND_TRX, 0, 6, &bind_body("agg", "pw"))).await;
    assert_eq!(read(&mut s).await.unwrap().1, 0x05, "ESME_RALYBND");
    // Unknown command id: generic_nack ESME_RINVCMDID with the same sequence number.
    send(&mut s, &pdu(0x0000_0099, 0, 7, &[1, 2, 3])).await;
    assert_eq!(read(&mut s).await.unwrap(), (RESP, 0x03, 7, vec![]));
    // A submit_sm cut short: generic_nack ESME_RINVCMDLEN, and the connection lives on.
    send(&mut s, &pdu(SUBMIT_SM, 0, 8, &c("USSD"))).await;
    assert_eq!(read(&mut s).await.unwrap(), (RESP, 0x02, 8, vec![]));
    // its_session_info of the wrong length (1 octet) is malformed too.
    let bad = sm(
        (1, 1, "254700000001"),
        (0, 0, "384"),
        0,
        b"*384*1#",
        &[tlv(0x1383, &[1])],
    );
    send(&mut s, &pdu(SUBMIT_SM, 0, 9, &bad)).await;
    assert_eq!(read(&mut s).await.unwrap(), (RESP, 0x02, 9, vec![]));
    send(&mut s, &pdu(ENQUIRE_LINK, 0, 10, &[])).await;
    assert_eq!(
        read(&mut s).await.unwrap(),
        (ENQUIRE_LINK | RESP, 0, 10, vec![])
    );
    // A bad MSISDN and a missing session TLV are refused on the resp.
    let no_its = sm(
        (1, 1, "254700000001"),
        (0, 0, "384"),
        0,
        b"*384*1#",
        &[tlv(0x0501, &[1])],
    );
    send(&mut s, &pdu(SUBMIT_SM, 0, 11, &no_its)).await;
    assert_eq!(
        read(&mut s).await.unwrap(),
        (SUBMIT_SM | RESP, 0xC3, 11, c(""))
    );
    let bad_src = sm(
        (1, 1, "abc"),
        (0, 0, "384"),
        0,
        b"*384*1#",
        &[tlv(0x0501, &[1]), tlv(0x1383, &[1, 0])],
    );
    send(&mut s, &pdu(SUBMIT_SM, 0, 12, &bad_src)).await;
    assert_eq!(
        read(&mut s).await.unwrap(),
        (SUBMIT_SM | RESP, 0x0A, 12, c(""))
    );
    // Unbind: unbind_resp, then the gateway closes.
    send(&mut s, &pdu(UNBIND, 0, 13, &[])).await;
    assert_eq!(read(&mut s).await.unwrap(), (UNBIND | RESP, 0, 13, vec![]));
    assert!(read(&mut s).await.is_none(), "closed after unbind");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_over_length_pdu_is_refused_and_the_connection_closed() {
    let sb = sandbox(LISTENER);
    let gw = sb.start().await;
    let mut s = TcpStream::connect(gw.smpp().unwrap().listener_addr().unwrap())
        .await
        .unwrap();
    let mut head = 0x0010_0000u32.to_be_bytes().to_vec();
    head.extend([0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 42]);
    send(&mut s, &head).await;
    assert_eq!(read(&mut s).await.unwrap(), (RESP, 0x02, 42, vec![]));
    assert!(read(&mut s).await.is_none());
    gw.shutdown().await;
}

/// A dialogue through the listener: its_session_info comes back byte for byte, with bit 0 set
/// and op 17 on the last screen; addresses are swapped; esm_class is 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_echoes_its_session_info_exactly() {
    let sb = sandbox(LISTENER);
    let gw = sb.start().await;
    let mut s = TcpStream::connect(gw.smpp().unwrap().listener_addr().unwrap())
        .await
        .unwrap();
    send(&mut s, &pdu(BIND_TRX, 0, 1, &bind_body("agg", "pw"))).await;
    assert_eq!(read(&mut s).await.unwrap().1, 0);
    let sub = (1, 1, "254700000001");
    // (subscriber's text, op, its_session_info) -> (gateway's text, op, its_session_info)
    let steps: [Step; 3] = [
        (
            b"*384*1#",
            0x01,
            [0x2A, 0x00],
            b"Say something",
            0x02,
            [0x2A, 0x00],
        ),
        (
            b"hi",
            0x12,
            [0x2A, 0x02],
            b"#1 254700000001: hi\n1. Again\n2. Stop",
            0x02,
            [0x2A, 0x02],
        ),
        (b"2", 0x12, [0x2A, 0x04], b"Bye after 1", 0x11, [0x2A, 0x05]),
    ];
    for (i, (text, op, its, reply, rop, rits)) in steps.into_iter().enumerate() {
        let seq = 10 + i as u32;
        let body = sm(
            sub,
            (0, 0, "384"),
            0,
            text,
            &[tlv(0x0501, &[op]), tlv(0x1383, &its)],
        );
        send(&mut s, &pdu(SUBMIT_SM, 0, seq, &body)).await;
        let resp = next(&mut s).await;
        assert_eq!((resp.0, resp.1, resp.2), (SUBMIT_SM | RESP, 0, seq));
        let (id, status, dseq, body) = next(&mut s).await;
        assert_eq!((id, status), (DELIVER_SM, 0));
        let want = sm(
            (0, 0, "384"),
            sub,
            0,
            reply,
            &[tlv(0x0501, &[rop]), tlv(0x1383, &rits)],
        );
        assert_eq!(body, want, "step {i}: {}", String::from_utf8_lossy(&body));
        send(&mut s, &pdu(DELIVER_SM | RESP, 0, dseq, &c(""))).await;
    }
    gw.shutdown().await;
}

/// A data_sm peer gets data_sm back, the text in message_payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_sm_carries_the_dialogue_in_message_payload() {
    let sb = sandbox(LISTENER);
    let gw = sb.start().await;
    let mut s = TcpStream::connect(gw.smpp().unwrap().listener_addr().unwrap())
        .await
        .unwrap();
    send(&mut s, &pdu(BIND_TRX, 0, 1, &bind_body("dsm", "pw"))).await;
    assert_eq!(read(&mut s).await.unwrap().1, 0);
    let mut body = c("USSD");
    body.extend([1, 1]);
    body.extend(c("254700000001"));
    body.extend([0, 0]);
    body.extend(c("384"));
    body.extend([0, 0, 0x0F]); // esm_class, registered_delivery, data_coding
    body.extend(tlv(0x0501, &[1]));
    body.extend(tlv(0x1383, &[9, 0]));
    body.extend(tlv(0x0424, b"*384*1#"));
    send(&mut s, &pdu(DATA_SM, 0, 2, &body)).await;
    let resp = next(&mut s).await;
    assert_eq!((resp.0, resp.1, resp.2), (DATA_SM | RESP, 0, 2));
    let (id, _, _, got) = next(&mut s).await;
    assert_eq!(id, DATA_SM);
    let mut want = c("USSD");
    want.extend([0, 0]);
    want.extend(c("384"));
    want.extend([1, 1]);
    want.extend(c("254700000001"));
    want.extend([0, 0, 0]);
    want.extend(tlv(0x0501, &[2]));
    want.extend(tlv(0x1383, &[9, 0]));
    want.extend(tlv(0x0424, b"Say something"));
    assert_eq!(got, want);
    gw.shutdown().await;
}

/// The gateway as ESME against a hand-written SMSC: the bind's bytes, deliver_sm answered at
/// once, the submit_sm reply byte for byte (esm_class 0, its_session_info echoed), a malformed
/// deliver_sm nacked without harm, and a peer that stops answering enquire_link replaced by a
/// fresh connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_esme_side_byte_for_byte_and_a_silent_peer_is_dropped() {
    let smsc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = smsc.local_addr().unwrap().port();
    let sb = sandbox(&format!(
        "[[smpp.binds]]\nname = \"raw\"\nhost = \"127.0.0.1\"\nport = {port}\nsystem_id = \"gw\"\npassword = \"pw\"\nenquire_link_secs = 1\nresponse_timeout_ms = 500\nreconnect_cap_ms = 300\n"
    ));
    let gw = sb.start().await;
    let (mut s, _) = tokio::time::timeout(Duration::from_secs(5), smsc.accept())
        .await
        .unwrap()
        .unwrap();
    let (id, _, seq, body) = next(&mut s).await;
    assert_eq!((id, body), (BIND_TRX, bind_body("gw", "pw")));
    send(&mut s, &pdu(BIND_TRX | RESP, 0, seq, &c("smsc"))).await;
    let sub = (1, 1, "254700000001");
    let start = sm(
        sub,
        (0, 0, "384"),
        0x0F,
        b"*384*1#",
        &[tlv(0x0501, &[1]), tlv(0x1383, &[7, 0])],
    );
    send(&mut s, &pdu(DELIVER_SM, 0, 1, &start)).await;
    assert_eq!(next(&mut s).await, (DELIVER_SM | RESP, 0, 1, c("")));
    let (id, _, seq, body) = next(&mut s).await;
    assert_eq!(id, SUBMIT_SM);
    let want = sm(
        (0, 0, "384"),
        sub,
        0,
        b"Say something",
        &[tlv(0x0501, &[2]), tlv(0x1383, &[7, 0])],
    );
    assert_eq!(body, want);
    send(&mut s, &pdu(SUBMIT_SM | RESP, 0, seq, &c("m1"))).await;
    // Malformed: nacked, and the dialogue goes on.
    send(&mut s, &pdu(DELIVER_SM, 0, 2, &[0x55, 0x53])).await;
    assert_eq!(next(&mut s).await, (RESP, 0x02, 2, vec![]));
    let more = sm(
        sub,
        (0, 0, "384"),
        0,
        b"yes",
        &[tlv(0x0501, &[0x12]), tlv(0x1383, &[7, 2])],
    );
    send(&mut s, &pdu(DELIVER_SM, 0, 3, &more)).await;
    assert_eq!(next(&mut s).await.2, 3);
    let (id, _, seq, body) = next(&mut s).await;
    assert_eq!(id, SUBMIT_SM);
    assert!(body.windows(3).any(|w| w == b"yes"), "{body:?}");
    send(&mut s, &pdu(SUBMIT_SM | RESP, 0, seq, &c("m2"))).await;
    assert!(gw.smpp().unwrap().binds_up() == 1);
    // Now the SMSC goes silent: the enquire_link goes unanswered, the gateway drops the
    // connection and binds again.
    let (mut s2, _) = tokio::time::timeout(Duration::from_secs(6), smsc.accept())
        .await
        .expect("a new connection")
        .unwrap();
    let (id, _, seq, _) = next(&mut s2).await;
    assert_eq!(id, BIND_TRX);
    send(&mut s2, &pdu(BIND_TRX | RESP, 0, seq, &c("smsc"))).await;
    drop(s);
    // Shutdown unbinds.
    let stop = tokio::spawn(async move { gw.shutdown().await });
    let (id, _, seq, _) = next(&mut s2).await;
    assert_eq!(id, UNBIND);
    send(&mut s2, &pdu(UNBIND | RESP, 0, seq, &[])).await;
    stop.await.unwrap();
}

/// The listener's perimeter: binds per system_id capped, source networks checked (at bind, and
/// at connect when no peer may come from the address), refusals counted by reason; and a peer
/// over its request rate answered ESME_RTHROTTLED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_caps_binds_checks_addresses_and_throttles() {
    let sb = sandbox(
        "[smpp.listener]\nlisten = \"127.0.0.1:0\"\nmax_pdus_per_sec = 1\n\
         [[smpp.listener.peers]]\nsystem_id = \"agg\"\npassword = \"pw\"\nmax_binds = 1\n\
         [[smpp.listener.peers]]\nsystem_id = \"far\"\npassword = \"pw\"\nallow_from = [\"192.0.2.0/24\"]\n",
    );
    let gw = sb.start().await;
    let addr = gw.smpp().unwrap().listener_addr().unwrap();
    let mut a = TcpStream::connect(addr).await.unwrap();
    send(&mut a, &pdu(BIND_TRX, 0, 1, &bind_body("agg", "pw"))).await;
    assert_eq!(read(&mut a).await.unwrap().1, 0, "first bind");
    // Over max_binds: ESME_RBINDFAIL, closed.
    let mut b = TcpStream::connect(addr).await.unwrap();
    send(&mut b, &pdu(BIND_TRX, 0, 1, &bind_body("agg", "pw"))).await;
    assert_eq!(read(&mut b).await.unwrap().1, 0x0D, "ESME_RBINDFAIL");
    assert_eq!(read(&mut b).await, None);
    // Not from 192.0.2.0/24.
    let mut f = TcpStream::connect(addr).await.unwrap();
    send(&mut f, &pdu(BIND_TRX, 0, 1, &bind_body("far", "pw"))).await;
    assert_eq!(read(&mut f).await.unwrap().1, 0x0D, "ESME_RBINDFAIL");
    // Ten requests at once on the bound connection, one allowed per second (the bind took the
    // first): most are throttled, every one is answered.
    let mut burst = Vec::new();
    for seq in 2..12 {
        burst.extend(pdu(
            SUBMIT_SM,
            0,
            seq,
            &sm((1, 1, "x"), (0, 0, "384"), 0, b"", &[]),
        ));
    }
    send(&mut a, &burst).await;
    let mut statuses = Vec::new();
    for _ in 2..12 {
        let p = next(&mut a).await;
        assert_eq!(p.0, SUBMIT_SM | RESP);
        statuses.push(p.1);
    }
    let throttled = statuses.iter().filter(|s| **s == 0x58).count();
    assert!(throttled >= 8, "ESME_RTHROTTLED: {statuses:x?}");
    // The bound connection goes; its slot frees.
    send(&mut a, &pdu(UNBIND, 0, 20, &[])).await;
    assert_eq!(next(&mut a).await.0, UNBIND | RESP);
    let scrape = || async {
        common::At::new(gw.admin_addr)
            .request("GET", "/metrics", &[], String::new())
            .await
            .body
    };
    assert!(
        common::eventually(5, || async {
            scrape()
                .await
                .contains("ussd_smpp_listener_connections{peer=\"agg\"} 0")
        })
        .await
    );
    // A listener peer's connections are counted apart from the ESME binds' 0/1 state.
    assert!(!scrape().await.contains("ussd_smpp_bind_up{bind=\"agg\""));
    let mut c2 = TcpStream::connect(addr).await.unwrap();
    send(&mut c2, &pdu(BIND_TRX, 0, 1, &bind_body("agg", "pw"))).await;
    assert_eq!(
        read(&mut c2).await.unwrap().1,
        0,
        "a bind after the first one left"
    );
    let metrics = scrape().await;
    for reason in ["too_many_binds", "not_allowed"] {
        let line = format!("ussd_smpp_bind_failures_total{{reason=\"{reason}\"}} 1");
        assert!(metrics.contains(&line), "{line}");
    }
    gw.shutdown().await;

    // No peer may come from here: the connection is closed before any PDU.
    let sb = sandbox(
        "[smpp.listener]\nlisten = \"127.0.0.1:0\"\n[[smpp.listener.peers]]\nsystem_id = \"far\"\npassword = \"pw\"\nallow_from = [\"192.0.2.0/24\", \"2001:db8::/32\"]\n",
    );
    let gw = sb.start().await;
    let addr = gw.smpp().unwrap().listener_addr().unwrap();
    let mut s = TcpStream::connect(addr).await.unwrap();
    assert_eq!(read(&mut s).await, None);
    gw.shutdown().await;
}

/// A start (op 1) or a continue (op 18) of `sub`'s dialogue in session `its`, as a submit_sm.
fn ussd(sub: &str, text: &[u8], op: u8, its: [u8; 2]) -> Vec<u8> {
    sm(
        (1, 1, sub),
        (0, 0, "384"),
        0,
        text,
        &[tlv(0x0501, &[op]), tlv(0x1383, &its)],
    )
}

/// Reads PDUs until a deliver_sm, acknowledges it and returns its body.
async fn screen(s: &mut TcpStream) -> Vec<u8> {
    let (id, status, seq, body) = next(s).await;
    assert_eq!((id, status), (DELIVER_SM, 0));
    send(s, &pdu(DELIVER_SM | RESP, 0, seq, &c(""))).await;
    body
}

fn has(body: &[u8], text: &str) -> bool {
    body.windows(text.len()).any(|w| w == text.as_bytes())
}

/// Issue 19: one peer, two transceivers, the first one stuck (it never reads its socket).
/// The replies to the hops that come on the second go back on the second, not on the
/// peer's first connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_goes_back_on_the_transceiver_the_hop_came_on() {
    let sb = sandbox(LISTENER);
    let gw = sb.start().await;
    let addr = gw.smpp().unwrap().listener_addr().unwrap();
    let mut stuck = TcpStream::connect(addr).await.unwrap();
    send(&mut stuck, &pdu(BIND_TRX, 0, 1, &bind_body("agg", "pw"))).await;
    assert_eq!(
        read(&mut stuck).await.unwrap().1,
        0,
        "first transceiver bound"
    );
    // From here on nothing is read from `stuck`.
    let mut s = TcpStream::connect(addr).await.unwrap();
    send(&mut s, &pdu(BIND_TRX, 0, 1, &bind_body("agg", "pw"))).await;
    assert_eq!(read(&mut s).await.unwrap().1, 0, "second transceiver bound");
    let sub = "254700000001";
    send(
        &mut s,
        &pdu(SUBMIT_SM, 0, 2, &ussd(sub, b"*384*1#", 1, [5, 0])),
    )
    .await;
    assert_eq!(next(&mut s).await.0, SUBMIT_SM | RESP);
    let body = screen(&mut s).await;
    assert!(has(&body, "Say something"), "{body:?}");
    send(
        &mut s,
        &pdu(SUBMIT_SM, 0, 3, &ussd(sub, b"hi", 0x12, [5, 2])),
    )
    .await;
    assert_eq!(next(&mut s).await.0, SUBMIT_SM | RESP);
    let body = screen(&mut s).await;
    assert!(has(&body, "#1 254700000001: hi"), "{body:?}");
    // Gone, both: the shutdown has no unbind to wait for.
    drop((stuck, s));
    gw.shutdown().await;
}

const BIND_RX: u32 = 0x01;
const BIND_TX: u32 = 0x02;

/// Issue 19: USSD from a bind that cannot receive. With no receiver or transceiver of the
/// same peer it is refused (ESME_RINVBNDSTS) and leaves no dialogue behind; with one, the
/// answer goes there; when that one leaves, the next message of the dialogue is refused and
/// the dialogue ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ussd_from_a_transmitter_is_answered_on_a_receiver_or_refused() {
    let sb = sandbox(LISTENER);
    let gw = sb.start().await;
    let registry = gw.registry().clone();
    let addr = gw.smpp().unwrap().listener_addr().unwrap();
    let sub = "254700000001";
    let mut tx = TcpStream::connect(addr).await.unwrap();
    send(&mut tx, &pdu(BIND_TX, 0, 1, &bind_body("agg", "pw"))).await;
    let (id, status, _, _) = read(&mut tx).await.unwrap();
    assert_eq!((id, status), (BIND_TX | RESP, 0), "transmitter bound");
    // Nowhere to answer: refused, no dialogue.
    send(
        &mut tx,
        &pdu(SUBMIT_SM, 0, 2, &ussd(sub, b"*384*1#", 1, [7, 0])),
    )
    .await;
    assert_eq!(next(&mut tx).await, (SUBMIT_SM | RESP, 0x04, 2, c("")));
    assert!(common::eventually(5, || async { registry.live() == 0 }).await);
    // A receiver of the same peer carries the answers to the transmitter's hops.
    let mut rx = TcpStream::connect(addr).await.unwrap();
    send(&mut rx, &pdu(BIND_RX, 0, 1, &bind_body("agg", "pw"))).await;
    let (id, status, _, _) = read(&mut rx).await.unwrap();
    assert_eq!((id, status), (BIND_RX | RESP, 0), "receiver bound");
    send(
        &mut tx,
        &pdu(SUBMIT_SM, 0, 3, &ussd(sub, b"*384*1#", 1, [8, 0])),
    )
    .await;
    let (id, status, seq, _) = next(&mut tx).await;
    assert_eq!((id, status, seq), (SUBMIT_SM | RESP, 0, 3));
    let body = screen(&mut rx).await;
    assert!(has(&body, "Say something"), "{body:?}");
    assert_eq!(registry.live(), 1, "the dialogue waits for the subscriber");
    // The receiver leaves: the dialogue's next message cannot be answered; refused, and the
    // dialogue is ended.
    send(&mut rx, &pdu(UNBIND, 0, 2, &[])).await;
    assert_eq!(next(&mut rx).await.0, UNBIND | RESP);
    assert_eq!(read(&mut rx).await, None, "closed after unbind");
    send(
        &mut tx,
        &pdu(SUBMIT_SM, 0, 4, &ussd(sub, b"hi", 0x12, [8, 2])),
    )
    .await;
    assert_eq!(next(&mut tx).await, (SUBMIT_SM | RESP, 0x04, 4, c("")));
    assert!(
        common::eventually(5, || async { registry.live() == 0 }).await,
        "the dialogue that could not go on was ended"
    );
    gw.shutdown().await;
}

/// Issue 19: an answer the peer refuses never reaches the subscriber, who cannot answer it:
/// the dialogue is ended, not left live until its idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialogue_whose_answer_is_refused_is_ended() {
    let sb = sandbox(LISTENER);
    let gw = sb.start().await;
    let registry = gw.registry().clone();
    let addr = gw.smpp().unwrap().listener_addr().unwrap();
    let mut s = TcpStream::connect(addr).await.unwrap();
    send(&mut s, &pdu(BIND_TRX, 0, 1, &bind_body("agg", "pw"))).await;
    assert_eq!(read(&mut s).await.unwrap().1, 0, "bound");
    let start = ussd("254700000001", b"*384*1#", 1, [9, 0]);
    send(&mut s, &pdu(SUBMIT_SM, 0, 2, &start)).await;
    assert_eq!(next(&mut s).await.0, SUBMIT_SM | RESP);
    let (id, _, seq, _) = next(&mut s).await;
    assert_eq!(id, DELIVER_SM);
    // ESME_RX_P_APPN: the peer's application refuses the message for good.
    send(&mut s, &pdu(DELIVER_SM | RESP, 0x65, seq, &c(""))).await;
    assert!(
        common::eventually(5, || async { registry.live() == 0 }).await,
        "the dialogue was ended"
    );
    gw.shutdown().await;
}

/// Issue 19: text from SMPP peers reaches the log escaped and capped, so it cannot forge a log
/// line or put control bytes in it: the system_id of a refused bind, and a dialled code that
/// has no route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smpp_text_cannot_forge_log_lines() {
    const FORGED: &str = "2030-01-01T00:00:00.000000Z  WARN ussd_gateway: FORGED";
    let sb = sandbox(LISTENER);
    let (_child, log) = sb.spawn_logged("info");
    let addr = log.addr("SMPP listener listening").await;
    // system_id is at most 15 characters; C-octet strings carry no NUL.
    let mut s = TcpStream::connect(addr).await.unwrap();
    send(
        &mut s,
        &pdu(BIND_TRX, 0, 1, &bind_body("\nFORGED\x1b[2J", "pw")),
    )
    .await;
    assert_eq!(read(&mut s).await.unwrap().1, 0x0F, "ESME_RINVSYSID");
    assert!(log.wait_for("bind from an unknown system_id", 5).await);
    // A dialled code in Latin-1 (data_coding 3), which carries any octet.
    let mut s = TcpStream::connect(addr).await.unwrap();
    send(&mut s, &pdu(BIND_TRX, 0, 1, &bind_body("agg", "pw"))).await;
    assert_eq!(read(&mut s).await.unwrap().1, 0, "bound");
    // The control octets within the part that is logged, the rest past the cap.
    let mut dialled = format!("*999*\x1b[2K\0\n{FORGED} admin token accepted").into_bytes();
    dialled.extend([b'9'; 100]);
    dialled.push(b'#');
    let body = sm(
        (1, 1, "254700000001"),
        (0, 0, "384"),
        3,
        &dialled,
        &[tlv(0x0501, &[1]), tlv(0x1383, &[3, 0])],
    );
    send(&mut s, &pdu(SUBMIT_SM, 0, 2, &body)).await;
    assert_eq!(next(&mut s).await.0, SUBMIT_SM | RESP);
    let _ = screen(&mut s).await;
    assert!(log.wait_for("unknown service code", 5).await);
    let bytes = log.bytes();
    let text = log.text();
    for line in text.lines() {
        assert!(
            !line.starts_with("FORGED") && !line.starts_with(FORGED),
            "a forged log line: {line:?}"
        );
    }
    assert!(
        !bytes.iter().any(|b| *b == 0x1B || *b == 0),
        "a raw ESC or NUL in the log:\n{text}"
    );
    assert!(
        text.contains(r#"system_id="\nFORGED\u{1b}[2J""#),
        "the system_id, escaped:\n{text}"
    );
    let line = text
        .lines()
        .find(|l| l.contains("unknown service code"))
        .unwrap();
    assert!(
        line.contains(r#"dialled="*999*\u{1b}[2K\0\n2030-01-01T00:00:00"#)
            && line.contains("...(+"),
        "the dialled code escaped and cut: {line:?}"
    );
    assert!(line.len() < 400, "capped: {} bytes", line.len());
}
