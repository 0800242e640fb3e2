//! The properties the fuzz targets check, one function per target.
//!
//! Each function takes the raw input and panics when a property does not hold (a panic is what
//! libFuzzer and AFL++ report as a crash). The fuzz crate (`fuzz/`) compiles this file as its
//! library and every target calls one function; `tests/fuzz_replay.rs` includes the same file
//! with `#[path]`, so plain `cargo test` replays every corpus and regression input through
//! exactly the same checks, on stable, without the fuzzer.
//!
//! It uses only the gateway's public API and crates the gateway itself depends on, so it
//! compiles in both places.

use bytes::BytesMut;
use rusmpp::{Command, CommandId};
use std::sync::{Arc, OnceLock};
use tokio_util::codec::{Decoder, Encoder};
use ussd_gateway::flow::{self, Ctx, Effect, EffectOutcome, Flow, FlowState, HttpOutcome, Step};
use ussd_gateway::front::smpp::wire::codec::{Frame, SmppCodec, header};
use ussd_gateway::hop::Reply;
use ussd_gateway::text::Limit;

/// A target's check: panics when a property does not hold.
pub type Check = fn(&[u8]);

/// Every target, by name, with its check: what `tests/fuzz_replay.rs` walks.
pub const TARGETS: &[(&str, Check)] = &[
    ("smpp_decode", smpp_decode),
    ("smpp_session", smpp_session),
    ("at_form", at_form),
    ("flow_load", flow_load),
    ("template_render", template_render),
    ("voice_callback", voice_callback),
];

/// Larger than any frame in a fuzz input, so that every length the input declares is decoded.
const DECODE_MAX: usize = 1 << 20;

// ---------------------------------------------------------------------------------------------
// smpp_decode

/// Arbitrary bytes through the gateway's SMPP framing and rusmpp's decoder: the decoder never
/// panics nor errors (bad input is a [`Frame::Malformed`] or [`Frame::BadLength`] to answer),
/// and every command that decodes encodes again, with a consistent header, to bytes that decode
/// to the same command.
pub fn smpp_decode(data: &[u8]) {
    let mut codec = SmppCodec::new(DECODE_MAX);
    let mut buf = BytesMut::from(data);
    loop {
        match codec
            .decode(&mut buf)
            .expect("the SMPP decoder never fails")
        {
            Some(Frame::Command(cmd)) => reencodes(&cmd, false),
            Some(Frame::Malformed { .. }) => {}
            Some(Frame::BadLength { length, .. }) => {
                assert!(
                    (length as usize) < 16 || length as usize > DECODE_MAX,
                    "BadLength for an acceptable length {length}"
                );
                assert!(buf.is_empty(), "a poisoned stream keeps no input");
                break;
            }
            None => break,
        }
    }
    // At the end of the stream a truncated PDU is dropped, never answered or panicked on.
    let _ = codec.decode_eof(&mut buf).expect("decode_eof never fails");
    assert!(buf.is_empty(), "decode_eof leaves nothing behind");
}

/// `cmd` encodes with a consistent header, and the encoding decodes to the same command.
///
/// `strict` is for what the gateway writes. For what it merely decoded, one rusmpp 0.4
/// asymmetry is tolerated: a TLV whose declared value_length is longer than its C-string value
/// keeps the declared length, so its re-encoding does not decode (found by this target; see
/// docs/reliability.md). The gateway never re-encodes a PDU it received: everything it sends is
/// built by its own code and checked strictly.
fn reencodes(cmd: &Command, strict: bool) {
    let mut out = BytesMut::new();
    SmppCodec::new(DECODE_MAX)
        .encode(cmd.clone(), &mut out)
        .expect("a decoded command encodes");
    let (len, id, status, seq) = header(&out).expect("an encoded command has a header");
    assert_eq!(len as usize, out.len(), "command_length of {cmd:?}");
    assert_eq!(id, u32::from(cmd.id()));
    assert_eq!(status, u32::from(cmd.status()));
    assert_eq!(seq, cmd.sequence_number());
    match SmppCodec::new(DECODE_MAX).decode(&mut out) {
        // A body-less command (enquire_link, unbind, generic_nack, ...) that came with stray
        // octets, or a response that came without its body, decodes without a PDU and
        // re-encodes as the bare header: the same command, which rusmpp then reads with its
        // (empty) PDU, or again without one.
        Ok(Some(Frame::Command(again))) if cmd.pdu().is_none() => {
            assert_eq!(
                (again.id(), again.status(), again.sequence_number()),
                (cmd.id(), cmd.status(), cmd.sequence_number())
            );
        }
        Ok(Some(Frame::Command(again))) => assert_eq!(*again, *cmd, "re-encoded command differs"),
        Ok(Some(Frame::Malformed { .. })) if !strict => {}
        other => panic!("re-encoded {cmd:?} does not decode: {other:?}"),
    }
    assert!(out.is_empty(), "re-encoded command has trailing bytes");
}

// ---------------------------------------------------------------------------------------------
// smpp_session

/// Everything the SMPP session target needs, built once per process: a runtime, an actor
/// system, and a listener and an ESME bind per shipped profile. Every hop is refused with the
/// busy text (live dialogue limit 0), so the target exercises the connection, the bind state
/// machine, the USSD translation and the reply path without keeping dialogues between inputs.
struct SmppHarness {
    rt: tokio::runtime::Runtime,
    /// One per (profile, busy text).
    listeners: Vec<ussd_gateway::front::smpp::conn::listener::Acceptor>,
    esmes: Vec<Arc<ussd_gateway::front::smpp::conn::esme::EsmeBind>>,
    _shards: ussd_gateway::session::registry::Shards,
}

/// The peer the listener accepts.
pub const LISTENER_PEER: (&str, &str) = ("fuzz", "pw");
/// Busy texts: GSM-7 with extension characters, and one that needs UCS-2.
const BUSY_TEXTS: [&str; 2] = [
    "Busy [try] {later} ~ \u{20ac}5",
    "Jaribu tena \u{260e} baadaye",
];

fn smpp_harness() -> &'static SmppHarness {
    static H: OnceLock<SmppHarness> = OnceLock::new();
    H.get_or_init(|| {
        use ussd_gateway::config::smpp::profile::PRESETS;
        use ussd_gateway::front::smpp::{
            BindConfig, ListenerConfig, Profile,
            conn::esme::EsmeBind,
            conn::listener,
            ussd::{Role, Ussd},
        };
        use ussd_gateway::session::{Core, Limits, Registry, Settings, Shards};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let shards = Shards::start(1).expect("actor system");
        let store = ussd_gateway::store::Store::temporary().expect("temporary store");
        let registries: Vec<Registry> = BUSY_TEXTS
            .iter()
            .map(|busy| {
                let settings = Settings {
                    unknown_service_text: "Unknown service".into(),
                    apology_text: "Sorry".into(),
                    timeout_text: "Timed out".into(),
                    tombstone_ttl: std::time::Duration::from_secs(60),
                    events: None,
                    fixed_now: None,
                    passivate_after: std::time::Duration::ZERO,
                };
                let limits = Limits {
                    per_msisdn: None,
                    max_live: 0,
                    busy_text: (*busy).to_string(),
                };
                let core = Core::new(store.clone(), Default::default(), settings, limits);
                Registry::new(core, &shards)
            })
            .collect();
        let listener_cfg: ListenerConfig =
            toml::from_str("listen = \"127.0.0.1:0\"\nresponse_timeout_ms = 2000")
                .expect("listener config");
        let mut listeners = Vec::new();
        let mut esmes = Vec::new();
        for name in PRESETS {
            let profile = Profile::preset(name).expect("preset");
            for registry in &registries {
                let ussd = |role| {
                    Arc::new(Ussd::new(
                        "fuzz",
                        profile.clone(),
                        role,
                        registry.clone(),
                        "254".into(),
                    ))
                };
                let peers = [(
                    LISTENER_PEER.0.to_string(),
                    listener::Peer {
                        password: LISTENER_PEER.1.to_string(),
                        ussd: ussd(Role::Smsc),
                        allow_from: Vec::new(),
                        max_binds: 4,
                    },
                )];
                listeners.push(listener::Acceptor::new(
                    &listener_cfg,
                    peers.into_iter().collect(),
                ));
                let bind_cfg: BindConfig = toml::from_str(&format!(
                    "name = \"fuzz\"\nhost = \"127.0.0.1\"\nsystem_id = \"gw\"\npassword = \"pw\"\n\
                     profile = \"{name}\"\nsource_addr = \"123\"\nresponse_timeout_ms = 2000"
                ))
                .expect("bind config");
                esmes.push(Arc::new(EsmeBind::new(bind_cfg, ussd(Role::Esme))));
            }
        }
        SmppHarness {
            rt,
            listeners,
            esmes,
            _shards: shards,
        }
    })
}

/// The stream a `smpp_session` input stands for.
///
/// Octet 0 chooses: bit 0 the role the gateway plays (0: the listener, the fuzz input being a
/// peer that binds to it; 1: an ESME bound to the fuzz input as SMSC), bit 1 the framing, bits
/// 2-7 the profile and busy text. With bit 1 clear the rest is sent as it is (the fuzzer has to
/// get command_length right itself). With bit 1 set the rest is a list of records: `[n_hi n_lo]`
/// then `n` octets (command_id, command_status, sequence_number, body), each sent with a
/// correct command_length, so that mutations reach the bodies and the state machine instead of
/// dying at the framing.
pub fn session_stream(data: &[u8]) -> Option<(bool, usize, Vec<u8>)> {
    let (&mode, rest) = data.split_first()?;
    let esme = mode & 1 == 1;
    let which = usize::from(mode >> 2);
    if mode & 2 == 0 {
        return Some((esme, which, rest.to_vec()));
    }
    let mut out = Vec::with_capacity(rest.len() + 64);
    let mut r = rest;
    while r.len() >= 2 {
        let n = usize::from(u16::from_be_bytes([r[0], r[1]])).min(r.len() - 2);
        out.extend_from_slice(&(n as u32 + 4).to_be_bytes());
        out.extend_from_slice(&r[2..2 + n]);
        r = &r[2 + n..];
    }
    Some((esme, which, out))
}

/// A sequence of PDUs (or any bytes) from a peer, through the connection state machine of the
/// listener or of an ESME bind, over an in-memory pipe.
///
/// - Nothing panics, and the connection ends when the peer's stream does.
/// - Everything the gateway writes is a sequence of well-formed PDUs (each decodes with the
///   gateway's own codec, re-encodes identically, no trailing bytes).
/// - Every response it writes answers a request the peer sent: same sequence number, the
///   request's own `_resp` or generic_nack.
/// - When the connection served the whole input (listener role, or a successful ESME bind),
///   every request that has a response got exactly one, up to the point where the link closes
///   by protocol (unbind, a length out of bounds).
pub fn smpp_session(data: &[u8]) {
    let _ = smpp_session_answers(data);
}

/// [`smpp_session`], returning what the gateway wrote (checked).
pub fn smpp_session_answers(data: &[u8]) -> Vec<Command> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use ussd_gateway::front::smpp::{conn::esme, wire::bind::BindKind};
    let Some((as_esme, which, stream)) = session_stream(data) else {
        return Vec::new();
    };
    let h = smpp_harness();
    let (output, served_all) = h.rt.block_on(async {
        let (ours, theirs) = tokio::io::duplex(1 << 20);
        let (their_rd, their_wr) = tokio::io::split(theirs);
        let (mut our_rd, mut our_wr) = tokio::io::split(ours);
        let input = stream.clone();
        let writer = async move {
            our_wr.write_all(&input).await.expect("pipe write");
            our_wr.shutdown().await.expect("pipe shutdown");
        };
        let reader = async move {
            let mut out = Vec::new();
            our_rd.read_to_end(&mut out).await.expect("pipe read");
            out
        };
        let gateway = async {
            if as_esme {
                let bind = &h.esmes[which % h.esmes.len()];
                match esme::connect_io(bind, BindKind::Transceiver, their_rd, their_wr, "fuzz")
                    .await
                {
                    Ok((link, task)) => {
                        bind.ussd.outlet.add(link);
                        task.await.expect("link task");
                        true
                    }
                    Err(_) => false,
                }
            } else {
                let acceptor = &h.listeners[which % h.listeners.len()];
                let (_link, task) = acceptor.serve_io(their_rd, their_wr, "fuzz");
                task.await.expect("link task");
                true
            }
        };
        let all = async { tokio::join!(writer, reader, gateway) };
        let ((), out, served) = tokio::time::timeout(std::time::Duration::from_secs(20), all)
            .await
            .expect("the connection did not end after the peer's stream did");
        (out, served)
    });
    check_answers(&stream, &output, as_esme, served_all)
}

/// What the peer sent, as the gateway's framing reads it: (command id, sequence number, whether
/// a response is owed), up to and including the frame after which the link closes.
/// A request: (command_id, sequence_number).
type Request = (u32, u32);

/// The peer's frames as (command_id, sequence_number, owed an answer), up to where the
/// connection closes by protocol; then the requests that may or may not be answered: from a
/// refused bind on. The listener answers a refused bind late (docs/security.md) and closes, so
/// when the peer's stream ends first that answer is never written; until the close the link
/// itself still answers enquire_link.
fn inbound(stream: &[u8], as_esme: bool) -> (Vec<(u32, u32, bool)>, Vec<Request>) {
    let mut codec = SmppCodec::new(4096); // the configured max_pdu_bytes
    let mut buf = BytesMut::from(stream);
    let mut frames = Vec::new();
    let mut bound = false;
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        match frame {
            Frame::Command(cmd) => {
                let id = u32::from(cmd.id());
                if !as_esme
                    && !bound
                    && let Some((_, c)) = cmd
                        .pdu()
                        .and_then(ussd_gateway::front::smpp::wire::bind::parse)
                {
                    if (c.system_id.as_str(), c.password.as_str()) == LISTENER_PEER {
                        bound = true;
                    } else {
                        let mut maybe = vec![(id, cmd.sequence_number())];
                        maybe.extend(inbound(&buf, true).0.iter().map(|f| (f.0, f.1)));
                        return (frames, maybe);
                    }
                }
                let owed = id & 0x8000_0000 == 0
                    && !matches!(cmd.id(), CommandId::AlertNotification | CommandId::Outbind);
                frames.push((id, cmd.sequence_number(), owed));
                if cmd.id() == CommandId::Unbind {
                    break;
                }
            }
            Frame::Malformed {
                command_id,
                sequence_number,
                ..
            } => frames.push((command_id, sequence_number, command_id & 0x8000_0000 == 0)),
            Frame::BadLength {
                sequence_number, ..
            } => {
                frames.push((0, sequence_number, true));
                break;
            }
        }
    }
    (frames, Vec::new())
}

fn check_answers(stream: &[u8], output: &[u8], as_esme: bool, served_all: bool) -> Vec<Command> {
    let mut codec = SmppCodec::new(DECODE_MAX);
    let mut buf = BytesMut::from(output);
    let mut answers = Vec::new();
    loop {
        match codec.decode(&mut buf).expect("decoder") {
            Some(Frame::Command(cmd)) => {
                reencodes(&cmd, true);
                answers.push(*cmd);
            }
            Some(other) => panic!("the gateway wrote a malformed PDU: {other:?}"),
            None => break,
        }
    }
    assert!(buf.is_empty(), "the gateway wrote a truncated PDU");
    let (frames, mut maybe) = inbound(stream, as_esme);
    let mut owed: Vec<(u32, u32)> = frames
        .into_iter()
        .filter(|f| f.2)
        .map(|(id, seq, _)| (id, seq))
        .collect();
    let mut unanswered = owed.clone();
    owed.extend(maybe.iter().copied());
    for a in &answers {
        let id = u32::from(a.id());
        if id & 0x8000_0000 == 0 {
            // A request of the gateway's own.
            let allowed: &[CommandId] = if as_esme {
                &[
                    CommandId::BindTransceiver,
                    CommandId::SubmitSm,
                    CommandId::DataSm,
                    CommandId::EnquireLink,
                    CommandId::Unbind,
                ]
            } else {
                &[
                    CommandId::DeliverSm,
                    CommandId::DataSm,
                    CommandId::EnquireLink,
                    CommandId::Unbind,
                ]
            };
            assert!(allowed.contains(&a.id()), "unexpected request {a:?}");
            assert!(
                (1..=0x7FFF_FFFF).contains(&a.sequence_number()),
                "sequence number out of range in {a:?}"
            );
            continue;
        }
        let seq = a.sequence_number();
        let answers_one =
            |&(req, s): &(u32, u32)| s == seq && (id == 0x8000_0000 || id == req | 0x8000_0000);
        assert!(
            owed.iter().any(answers_one),
            "response {a:?} answers no request of the peer"
        );
        if let Some(i) = unanswered.iter().position(answers_one) {
            unanswered.remove(i);
        } else if let Some(i) = maybe.iter().position(answers_one) {
            maybe.remove(i);
        } else if served_all {
            panic!("request answered twice: {a:?}\nrequests: {owed:x?}\nanswers: {answers:?}");
        }
    }
    if served_all {
        assert!(
            unanswered.is_empty(),
            "requests left unanswered: {unanswered:x?}"
        );
    }
    answers
}

// ---------------------------------------------------------------------------------------------
// at_form

/// Arbitrary form bodies through the AT dialect's parser, and `derive_input` properties.
///
/// - `parse` never panics; what it accepts is trimmed, non-empty and within bounds, with a
///   canonical MSISDN, and a form re-encoded from it parses back to the same hop.
/// - `derive_input(seen, text)` never panics and is always a suffix of `text`; when `text`
///   extends `seen` (`seen*input`, or `input` alone on the first hop), it is exactly `input`.
/// - `render_body` puts `CON `/`END ` in front of the text and changes nothing else.
pub fn at_form(data: &[u8]) {
    use ussd_gateway::config::dialect::DialectConfig;
    use ussd_gateway::front::http::dialect::{Fields, Request, Wire, parse, render_body};
    use ussd_gateway::hop::HopInput;
    use ussd_gateway::session::actor::derive_input;
    let d = DialectConfig {
        name: "africastalking".into(),
        ..Default::default()
    }
    .resolve()
    .expect("the AT dialect resolves");
    let wire = Wire::new(d, ussd_gateway::text::Limit::default());
    let hop = |body: &[u8]| match parse(&wire, &Fields::form(body), "254") {
        Ok(p) => match p.request {
            Request::Hop(h) => Some(h),
            Request::End { .. } => panic!("AT has no end kind"),
        },
        Err(_) => None,
    };
    if let Some(h) = hop(data) {
        let session = h
            .key
            .strip_prefix("http:")
            .expect("AT's key prefix")
            .to_string();
        for (field, max) in [
            (&session, 128),
            (&h.dialled, 64),
            (&h.msisdn.as_str().to_string(), 32),
        ] {
            assert!(!field.is_empty() && field.len() <= max, "{field:?}");
            assert_eq!(field.trim(), field.as_str(), "untrimmed {field:?}");
        }
        assert!(h.msisdn.as_str().bytes().all(|b| b.is_ascii_digit()));
        if let Some(n) = &h.network {
            assert!(!n.is_empty() && n.len() <= 16 && n.trim() == n);
        }
        let HopInput::Cumulative(text) = &h.input else {
            panic!("AT's input is cumulative")
        };
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("sessionId", &session)
            .append_pair("serviceCode", &h.dialled)
            .append_pair("phoneNumber", h.msisdn.as_str())
            .append_pair("text", text);
        if let Some(n) = &h.network {
            form.append_pair("networkCode", n);
        }
        let again =
            hop(form.finish().as_bytes()).expect("a callback re-encoded from a parsed one parses");
        assert_eq!(
            (
                &again.key,
                &again.dialled,
                &again.msisdn,
                &again.network,
                &again.input
            ),
            (&h.key, &h.dialled, &h.msisdn, &h.network, &h.input)
        );
        for end in [false, true] {
            let reply = Reply {
                text: text.clone(),
                end,
            };
            let body = render_body(&wire.dialect, &reply, &Fields::form(b""), false);
            assert_eq!(&body[4..], text.as_str());
            assert_eq!(&body[..4], if end { "END " } else { "CON " });
        }
    }
    // derive_input: the input splits at its first 0x00 into what was seen and the new input.
    let s = String::from_utf8_lossy(data);
    let (seen, input) = s.split_once('\0').unwrap_or(("", &s));
    let text = if seen.is_empty() {
        input.to_string()
    } else {
        format!("{seen}*{input}")
    };
    assert_eq!(
        derive_input(seen, &text),
        input,
        "seen {seen:?} text {text:?}"
    );
    // Any pair: the result is a suffix of the text.
    for (a, b) in [(seen, input), (input, seen), (&s[..], input)] {
        let d = derive_input(a, b);
        assert!(b.ends_with(&d), "derive_input({a:?}, {b:?}) = {d:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// flow_load and template_render

fn ctx() -> Ctx<'static> {
    Ctx {
        phone: "254700000001",
        service_code: "*123#",
        network: Some("63902"),
        session_id: "fuzz-session",
        limit: Limit::default(),
        now: jiff::Timestamp::from_second(1_767_600_000).expect("timestamp"),
    }
}

/// The canned outcome of an effect; `n` varies it (found / missing, success / failure).
fn outcome(effect: &Effect, n: usize) -> EffectOutcome {
    let record = serde_json::json!({
        "id": "254700000001", "full_name": "Amina Odhiambo", "name": "Amina", "balance": 1500,
        "pin": "1234", "results": [], "items": [{"id": "a", "name": "A"}], "status": "active"
    });
    match effect {
        Effect::Load { .. } if n % 3 == 2 => EffectOutcome::Loaded(None),
        Effect::Load { .. } => EffectOutcome::Loaded(Some(record)),
        Effect::List { .. } => EffectOutcome::Loaded(Some(serde_json::json!([record]))),
        Effect::Save { .. } if n % 4 == 3 => EffectOutcome::Failed("fuzz".into()),
        Effect::Save { .. } => EffectOutcome::Saved,
        Effect::Transact { ops } if n % 3 == 1 && !ops.is_empty() => EffectOutcome::Transacted {
            failed_op: Some(n % ops.len()),
            txn: 7,
        },
        Effect::Transact { .. } => EffectOutcome::Transacted {
            failed_op: None,
            txn: 7,
        },
        Effect::Http(_) if n % 2 == 1 => EffectOutcome::Http(HttpOutcome::Timeout),
        Effect::Http(_) => EffectOutcome::Http(HttpOutcome::Response {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: r#"{"ok":true,"balance":10,"items":[{"name":"x"}]}"#.into(),
            cached: false,
        }),
    }
}

/// Runs effects until the engine replies (bounded: a flow may legitimately loop through
/// effects, the engine's own guard counts screens within one call).
fn settle(flow: &Flow, mut step: Step, ctx: &Ctx, n: &mut usize) -> Option<(FlowState, Reply)> {
    for _ in 0..64 {
        match step {
            Step::Reply { state, reply } => return Some((state, reply)),
            Step::Effect { state, effect } => {
                *n += 1;
                step = flow::resume(flow, state, outcome(&effect, *n), ctx);
            }
        }
    }
    None
}

/// What every reply and state must satisfy: the reply fits one screen (long screens are
/// paginated, never sent oversized), and the state survives the JSON round trip it makes
/// through sled after every hop.
fn check_step(state: &FlowState, reply: &Reply, ctx: &Ctx) {
    assert!(
        ussd_gateway::text::fits(&reply.text, ctx.limit),
        "reply does not fit one screen: {:?}",
        reply.text
    );
    let json = serde_json::to_string(state).expect("state serialises");
    let back: FlowState = serde_json::from_str(&json).expect("state deserialises");
    assert_eq!(
        serde_json::to_string(&back).expect("state serialises"),
        json,
        "state changes through JSON"
    );
}

/// Starts a dialogue on `flow` and answers each of `inputs` while it goes on.
fn walk(flow: &Flow, inputs: &[&str]) {
    let ctx = ctx();
    let mut n = 0;
    let Some((mut state, reply)) = settle(flow, flow::start(flow, &ctx), &ctx, &mut n) else {
        return;
    };
    check_step(&state, &reply, &ctx);
    let mut end = reply.end;
    for input in inputs {
        if end {
            return;
        }
        let step = flow::input(flow, state, input, &ctx);
        let Some((s, reply)) = settle(flow, step, &ctx, &mut n) else {
            return;
        };
        check_step(&s, &reply, &ctx);
        state = s;
        end = reply.end;
    }
}

/// Inputs every walk tries: choices, navigation keys, free text.
const INPUTS: &[&str] = &["1", "98", "0", "2", "00", "1234", "", "3", "*", "1"];

/// Arbitrary YAML through `Flow::from_yaml`: never panics; when it loads, a dialogue started on
/// it and walked with a few inputs never panics, every reply fits one screen and every state
/// survives its JSON round trip.
pub fn flow_load(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(flow) = Flow::from_yaml("fuzz", "fuzz.yaml", src) {
        walk(&flow, INPUTS);
    }
}

/// Arbitrary template text in a small flow. The input splits at 0x00 into up to three parts:
/// the screens' text, a `set` value and a router's `when` expression (defaults when absent).
/// Loading never panics; when it loads, walking it never panics and keeps the flow_load
/// properties.
pub fn template_render(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let mut parts = s.split('\0');
    let text = parts.next().unwrap_or_default();
    let value = parts.next().unwrap_or("{{ name | upper }}");
    let when = parts.next().unwrap_or("n > 2");
    let doc = serde_json::json!({
        "start": "prep",
        "vars": {
            "name": "Amina", "n": 3, "price": 12.5,
            "items": [{"name": "Maize", "price": 5}, {"name": "Beans", "price": 7}],
        },
        "screens": {
            "prep": {"type": "set", "values": {"v": value}, "next": "route"},
            "route": {"type": "router", "routes": [{"when": when, "next": "home"}],
                      "default": "home"},
            "home": {"type": "menu", "text": text, "options": [
                {"label": "Again", "next": "ask"}, {"label": "Done", "next": "bye"}]},
            "ask": {"type": "input", "text": text, "into": "answer", "next": "home"},
            "bye": {"type": "end", "text": text},
        }
    });
    // JSON is YAML: the template text reaches the loader exactly, whatever it holds.
    if let Ok(flow) = Flow::from_yaml("fuzz", "fuzz.yaml", &doc.to_string()) {
        walk(&flow, &["1", text, "98", "0", "2", "98"]);
    }
}

// ---------------------------------------------------------------------------------------------
// voice_callback

fn ivrs() -> &'static ussd_gateway::voice::IvrSet {
    static IVRS: OnceLock<ussd_gateway::voice::IvrSet> = OnceLock::new();
    IVRS.get_or_init(|| {
        let yaml = include_str!("../../config/ivr/microfinance.yaml");
        let ivr = ussd_gateway::voice::IvrSet::parse_one("microfinance.yaml", yaml, &|_| None)
            .expect("the shipped IVR parses");
        ussd_gateway::voice::IvrSet::from_ivrs(vec![ivr]).expect("one IVR")
    })
}

/// Arbitrary form bodies through the voice callback parser and `answer`. The input's first
/// line, when it starts with `/`, is the request path; the rest is the form body.
///
/// - `parse_callback` never panics; what it accepts has a session id.
/// - `answer` never panics, on the path given and on every endpoint of the shipped IVR, and
///   every XML it returns parses back with quick-xml: one `<Response>` root, matching end tags,
///   every text and attribute value unescapes.
pub fn voice_callback(data: &[u8]) {
    use ussd_gateway::voice::{RenderOptions, VoiceAnswer, VoicePath, answer, parse_callback};
    let (path, body) = match data.split(|&b| b == b'\n').next() {
        Some(first) if first.starts_with(b"/") => (
            std::str::from_utf8(first)
                .ok()
                .and_then(VoicePath::from_path),
            &data[first.len() + usize::from(data.len() > first.len())..],
        ),
        _ => (None, data),
    };
    let Ok(cb) = parse_callback(body) else {
        return;
    };
    // The session id is stored, logged and echoed: short, and only the safe characters.
    assert!(!cb.session_id.is_empty() && cb.session_id.len() <= 128);
    assert!(
        cb.session_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b)),
        "{:?}",
        cb.session_id
    );
    let ivr = |menu: Option<&str>| (String::from("microfinance"), menu.map(str::to_string));
    let mut paths = vec![VoicePath::Callback];
    for menu in [None, Some("menu"), Some("sales"), Some("nope")] {
        let (ivr, menu) = ivr(menu);
        paths.push(VoicePath::Dtmf {
            ivr: ivr.clone(),
            menu: menu.clone(),
        });
        paths.push(VoicePath::Menu { ivr, menu });
    }
    paths.extend(path);
    for opts in [
        RenderOptions::default(),
        RenderOptions {
            ringback_attribute: "ringBackTone".into(),
        },
    ] {
        for p in &paths {
            match answer(ivrs(), p.clone(), &cb, "https://gw.example/a&b", &opts) {
                VoiceAnswer::Recorded => assert!(!cb.is_active),
                VoiceAnswer::Xml(xml) => xml_parses(&xml),
            }
        }
    }
}

fn xml_parses(xml: &str) {
    use quick_xml::events::{BytesStart, Event};
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut depth = 0usize;
    let mut roots = 0;
    let element = |e: &BytesStart, depth: usize, roots: &mut i32| {
        if depth == 0 {
            *roots += 1;
            assert_eq!(e.name().as_ref(), b"Response", "root element of {xml}");
        }
        for attr in e.attributes() {
            let attr = attr.unwrap_or_else(|err| panic!("bad attribute ({err}): {xml}"));
            attr.unescape_value()
                .unwrap_or_else(|err| panic!("attribute does not unescape ({err}): {xml}"));
        }
    };
    loop {
        let event = reader
            .read_event()
            .unwrap_or_else(|e| panic!("voice XML does not parse ({e}): {xml}"));
        match event {
            Event::Start(e) => {
                element(&e, depth, &mut roots);
                depth += 1;
            }
            Event::Empty(e) => element(&e, depth, &mut roots),
            Event::End(_) => {
                depth = depth
                    .checked_sub(1)
                    .unwrap_or_else(|| panic!("unbalanced XML: {xml}"));
            }
            Event::Text(t) => {
                t.decode()
                    .unwrap_or_else(|err| panic!("text does not decode ({err}): {xml}"));
            }
            Event::GeneralRef(r) => {
                if r.is_char_ref() {
                    let c = r
                        .resolve_char_ref()
                        .unwrap_or_else(|err| panic!("bad character reference ({err}): {xml}"));
                    assert!(c.is_some(), "bad character reference in {xml}");
                } else {
                    let name = r.decode().expect("entity name");
                    assert!(
                        matches!(&*name, "amp" | "lt" | "gt" | "quot" | "apos"),
                        "unknown entity &{name}; in {xml}"
                    );
                }
            }
            Event::Eof => break,
            Event::Decl(_) | Event::Comment(_) | Event::CData(_) | Event::PI(_) => {}
            Event::DocType(_) => panic!("doctype in voice XML: {xml}"),
        }
    }
    assert_eq!(depth, 0, "unclosed elements: {xml}");
    assert_eq!(roots, 1, "one root element: {xml}");
}
