//! Unit tests of the dialect front: AT's callback as it always read, Hubtel's kinds and casing, templates.

use super::*;
use crate::config::dialect::DialectConfig;

fn wire(name: &str) -> Arc<Wire> {
    let d = DialectConfig {
        name: name.into(),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    Wire::new(d, Limit::default())
}

fn form(body: &str) -> Fields {
    Fields::Pairs(pairs(body.as_bytes()))
}

fn json(v: Value) -> Fields {
    match v {
        Value::Object(m) => Fields::Json(m),
        _ => unreachable!(),
    }
}

fn hop(p: Parsed) -> Hop {
    match p.request {
        Request::Hop(h) => h,
        Request::End { .. } => panic!("not a hop"),
    }
}

#[test]
fn an_at_callback_reads_as_it_always_has() {
    let at = wire("africastalking");
    let h = hop(parse(
        &at,
        &form("sessionId=ATUid_1&serviceCode=%2A123%23&phoneNumber=%2B254700000001&networkCode=63902&text=1%2A2"),
        "254",
    )
    .unwrap());
    assert_eq!(&*h.key, "http:ATUid_1");
    assert_eq!(h.dialled, "*123#");
    assert_eq!(h.msisdn.as_str(), "254700000001");
    assert_eq!(h.input, HopInput::Cumulative("1*2".into()));
    assert_eq!(h.network.as_deref(), Some("63902"));
    assert_eq!(h.dialect, "africastalking");
    let h = hop(parse(
        &at,
        &form("sessionId=s&serviceCode=*123%23&phoneNumber=0700000001"),
        "254",
    )
    .unwrap());
    assert_eq!(h.input, HopInput::Cumulative(String::new()));
    assert_eq!(h.network, None);
    // A repeated field: the last one counts.
    let h = hop(parse(
        &at,
        &form("sessionId=s&serviceCode=*1%23&phoneNumber=0700000001&text=1&text=2"),
        "254",
    )
    .unwrap());
    assert_eq!(h.input, HopInput::Cumulative("2".into()));
}

#[test]
fn missing_and_bad_at_fields_say_which() {
    let at = wire("africastalking");
    let e = |body: &str| parse(&at, &form(body), "254").unwrap_err();
    assert_eq!(
        e("serviceCode=*1%23&phoneNumber=254700000001"),
        "missing field sessionId"
    );
    assert_eq!(
        e("sessionId=s&phoneNumber=254700000001"),
        "missing field serviceCode"
    );
    assert_eq!(
        e("sessionId=s&serviceCode=*1%23"),
        "missing field phoneNumber"
    );
    assert_eq!(
        e("sessionId=&serviceCode=*1%23&phoneNumber=1"),
        "empty field sessionId"
    );
    assert_eq!(
        e("sessionId=s&serviceCode=*1%23&phoneNumber=hello"),
        "phoneNumber is not a valid phone number"
    );
}

#[test]
fn hubtel_starts_with_the_dial_string_and_continues_with_one_input() {
    let h = wire("hubtel");
    let start = parse(
        &h,
        &json(serde_json::json!({"Mobile":"233246912184","SessionId":"a1","ServiceCode":"713","Type":"Initiation","Message":"*713*2#","Operator":"mtn","Sequence":1})),
        "233",
    )
    .unwrap();
    assert!(!start.lowercase);
    let start = hop(start);
    assert_eq!(&*start.key, "hubtel:a1");
    assert_eq!(start.dialled, "*713*2#");
    assert_eq!(start.input, HopInput::Cumulative(String::new()));
    assert_eq!(start.seq, Some(1));
    let next = parse(
        &h,
        &json(serde_json::json!({"Mobile":"233246912184","SessionId":"a1","ServiceCode":"713","Type":"response","Message":"3","Sequence":"2"})),
        "233",
    )
    .unwrap();
    assert!(next.lowercase);
    let next = hop(next);
    assert_eq!(next.dialled, "");
    assert_eq!(next.input, HopInput::Single(Some("3".into())));
    assert_eq!(next.seq, Some(2));
    // Programmable services: an empty Message; the code comes from ServiceCode.
    let prog = hop(parse(
        &h,
        &json(serde_json::json!({"Mobile":"233246912184","SessionId":"a2","ServiceCode":"713","Type":"initiation","Message":""})),
        "233",
    )
    .unwrap());
    assert_eq!(prog.dialled, "*713#");
    let e = parse(
        &h,
        &json(serde_json::json!({"Mobile":"233246912184","SessionId":"a2","Type":"Hello"})),
        "233",
    )
    .unwrap_err();
    assert!(
        e.starts_with("field Type must be one of Initiation, Response"),
        "{e}"
    );
}

#[test]
fn json_replies_fill_their_template_in_the_requests_casing() {
    let h = wire("hubtel");
    let fields = json(serde_json::json!({"SessionId":"a1","ClientState":"x","Type":"response"}));
    let filled = |reply: &Reply, lower: bool| {
        let t = if reply.end {
            &h.dialect.reply_end
        } else {
            &h.dialect.reply_continue
        };
        fill_object(t.as_object().unwrap(), reply, &fields, Some("Type"), lower)
    };
    let m = filled(&Reply::con("Menu\n1. A"), true);
    assert_eq!(m["Type"], "response");
    assert_eq!(m["Message"], "Menu\n1. A");
    assert_eq!(m["Label"], "Menu");
    assert_eq!(m["ClientState"], "x");
    assert_eq!(m["SessionId"], "a1");
    assert_eq!(filled(&Reply::end("Bye"), false)["Type"], "Release");
    // Dotted keys nest; a missing request field is left out.
    let beem = wire("beem");
    let fields = json(serde_json::json!({"session_id":"b","payload":{"request_id":7}}));
    let m = fill_object(
        beem.dialect.reply_continue.as_object().unwrap(),
        &Reply::con("Hi"),
        &fields,
        None,
        false,
    );
    assert_eq!(
        m["payload"],
        serde_json::json!({"request_id":7,"request":"Hi"})
    );
    assert!(!m.contains_key("msisdn"));
}
