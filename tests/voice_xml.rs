//! Voice XML and IVR tests: golden documents for every branch of the microfinance IVR, each
//! parsed back with quick-xml; escaping; every action with every attribute; the IVR loader's
//! errors; callback parsing; call records; and a property test that no input breaks the XML.

use proptest::prelude::*;
use quick_xml::events::Event;
use std::path::Path;
use ussd_gateway::store::Store;
use ussd_gateway::voice::*;

const DECL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;
const BASE: &str = "http://127.0.0.1:8080";
const MENU_TEXT: &str = "Thank you for calling. Press 0 to talk to sales, 1 to talk to support or 2 to hear this message again.";

/// A parsed element: name, attributes in order, unescaped text, children.
#[derive(Debug, Default, PartialEq)]
struct El {
    name: String,
    attrs: Vec<(String, String)>,
    text: String,
    children: Vec<El>,
}

impl El {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn names(&self) -> Vec<&str> {
        self.children.iter().map(|c| c.name.as_str()).collect()
    }
}

fn element(e: &quick_xml::events::BytesStart<'_>) -> Result<El, String> {
    let mut el = El {
        name: String::from_utf8(e.name().as_ref().to_vec()).map_err(|e| e.to_string())?,
        ..El::default()
    };
    for a in e.attributes() {
        let a = a.map_err(|e| e.to_string())?;
        let key = String::from_utf8(a.key.as_ref().to_vec()).map_err(|e| e.to_string())?;
        let value = a.unescape_value().map_err(|e| e.to_string())?.into_owned();
        el.attrs.push((key, value));
    }
    Ok(el)
}

/// Parses a response document strictly: one declaration, one root, matching end tags, known
/// entities only, nothing after the root.
fn parse(xml: &str) -> Result<El, String> {
    if !xml.starts_with(DECL) {
        return Err("missing declaration".into());
    }
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<El> = Vec::new();
    let mut root = None;
    loop {
        let ev = reader.read_event().map_err(|e| e.to_string())?;
        let top_level = stack.is_empty();
        match ev {
            Event::Decl(_) if root.is_none() => {}
            Event::Start(e) if !(top_level && root.is_some()) => stack.push(element(&e)?),
            Event::Empty(e) if !(top_level && root.is_some()) => {
                let el = element(&e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or("unbalanced end")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) if !top_level => stack
                .last_mut()
                .ok_or("text outside")?
                .text
                .push_str(&t.decode().map_err(|e| e.to_string())?),
            Event::GeneralRef(r) if !top_level => {
                let c = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.decode().map_err(|e| e.to_string())?;
                        quick_xml::escape::resolve_xml_entity(&name)
                            .ok_or(format!("unknown entity {name}"))?
                            .to_string()
                    }
                };
                stack.last_mut().ok_or("ref outside")?.text.push_str(&c);
            }
            Event::Eof if stack.is_empty() => return root.ok_or("no root".into()),
            other => return Err(format!("unexpected {other:?}")),
        }
    }
}

fn microfinance() -> IvrSet {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ivr");
    IvrSet::load_dir_with_env(&dir, &|_| None).expect("the shipped IVR loads")
}

fn cb(body: &str) -> VoiceCallback {
    parse_callback(body.as_bytes()).expect("valid callback")
}

fn xml_of(a: VoiceAnswer) -> String {
    match a {
        VoiceAnswer::Xml(x) => x,
        VoiceAnswer::Recorded => panic!("expected XML"),
    }
}

fn dtmf(digits: Option<&str>) -> String {
    let body = match digits {
        Some(d) => format!(
            "isActive=1&sessionId=ATVId_1&dtmfDigits={}",
            d.replace('#', "%23")
        ),
        None => "isActive=1&sessionId=ATVId_1".to_string(),
    };
    let path = VoicePath::Dtmf {
        ivr: "microfinance".into(),
        menu: None,
    };
    xml_of(answer(
        &microfinance(),
        path,
        &cb(&body),
        BASE,
        &RenderOptions::default(),
    ))
}

fn start_menu() -> String {
    format!(
        r##"{DECL}<Response><GetDigits timeout="30" finishOnKey="#" callbackUrl="http://127.0.0.1:8080/voice/dtmf/microfinance"><Say>{MENU_TEXT}</Say></GetDigits><Say>Thank you for calling. Good bye!</Say></Response>"##
    )
}

fn connect(who: &str, number: &str) -> String {
    format!(
        r#"{DECL}<Response><Say>Please hold while we connect you to {who}.</Say><Dial phoneNumbers="{number}"/></Response>"#
    )
}

#[test]
fn inbound_call_hears_the_start_menu() {
    let body = "isActive=1&sessionId=ATVId_1&direction=Inbound&callerNumber=%2B254700000001&destinationNumber=%2B254711000000";
    let xml = xml_of(answer(
        &microfinance(),
        VoicePath::Callback,
        &cb(body),
        BASE,
        &RenderOptions::default(),
    ));
    assert_eq!(xml, start_menu());
    let root = parse(&xml).unwrap();
    assert_eq!(root.name, "Response");
    assert_eq!(root.names(), ["GetDigits", "Say"]);
    let g = &root.children[0];
    assert_eq!(
        g.attrs,
        [
            ("timeout".into(), "30".into()),
            ("finishOnKey".into(), "#".into()),
            (
                "callbackUrl".into(),
                format!("{BASE}/voice/dtmf/microfinance")
            ),
        ]
    );
    assert_eq!(g.children[0].text, MENU_TEXT);
    assert_eq!(root.children[1].text, "Thank you for calling. Good bye!");
}

#[test]
fn outbound_call_finds_the_ivr_by_our_number_as_caller() {
    let body = "isActive=1&sessionId=ATVId_2&direction=Outbound&callerNumber=%2B254711000000&destinationNumber=%2B254700000001";
    let xml = xml_of(answer(
        &microfinance(),
        VoicePath::Callback,
        &cb(body),
        BASE,
        &RenderOptions::default(),
    ));
    assert_eq!(xml, start_menu());
    // Defensive: an Outbound call whose fields are the other way round still finds it.
    let body = "isActive=1&sessionId=ATVId_3&direction=Outbound&callerNumber=%2B254700000001&destinationNumber=%2B254711000000";
    let xml = xml_of(answer(
        &microfinance(),
        VoicePath::Callback,
        &cb(body),
        BASE,
        &RenderOptions::default(),
    ));
    assert_eq!(xml, start_menu());
}

#[test]
fn digit_0_connects_to_sales() {
    let xml = dtmf(Some("0"));
    assert_eq!(xml, connect("Sales", "+254711000001"));
    let root = parse(&xml).unwrap();
    assert_eq!(root.names(), ["Say", "Dial"]);
    assert_eq!(root.children[1].attr("phoneNumbers"), Some("+254711000001"));
    // No ringback URL configured: the attribute is left out (AT plays its own tone).
    assert_eq!(root.children[1].attr("ringbackTone"), None);
    // A trailing finishOnKey is not part of the choice.
    assert_eq!(dtmf(Some("0#")), xml);
}

#[test]
fn digit_1_and_any_other_connect_to_support() {
    let expected = connect("Support", "+254711000002");
    for d in ["1", "1#", "9", "9#", "42", "*"] {
        let xml = dtmf(Some(d));
        assert_eq!(xml, expected, "{d}");
        let root = parse(&xml).unwrap();
        assert_eq!(
            root.children[0].text,
            "Please hold while we connect you to Support."
        );
        assert_eq!(root.children[1].attr("phoneNumbers"), Some("+254711000002"));
    }
}

#[test]
fn digit_2_redirects_to_the_menu_and_the_menu_url_serves_it() {
    let xml = dtmf(Some("2"));
    assert_eq!(
        xml,
        format!(
            "{DECL}<Response><Redirect>http://127.0.0.1:8080/voice/menu/microfinance</Redirect></Response>"
        )
    );
    let root = parse(&xml).unwrap();
    assert_eq!(root.names(), ["Redirect"]);
    assert_eq!(
        root.children[0].text,
        format!("{BASE}/voice/menu/microfinance")
    );
    let path = VoicePath::from_path("/voice/menu/microfinance").unwrap();
    let menu = answer(
        &microfinance(),
        path,
        &cb("isActive=1&sessionId=s"),
        BASE,
        &RenderOptions::default(),
    );
    assert_eq!(xml_of(menu), start_menu());
}

#[test]
fn no_digit_says_good_bye() {
    let expected =
        format!("{DECL}<Response><Say>Thank you for calling. Good bye!</Say></Response>");
    for d in [None, Some(""), Some("#")] {
        let xml = dtmf(d);
        assert_eq!(xml, expected, "{d:?}");
        assert_eq!(
            parse(&xml).unwrap().children[0].text,
            "Thank you for calling. Good bye!"
        );
    }
}

#[test]
fn numbers_and_ringback_come_from_the_environment() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ivr");
    let env = |name: &str| match name {
        "MICROFINANCE_SALES_NUMBERS" => {
            Some("+254711000011, agent@ke.sip.africastalking.com".into())
        }
        "MICROFINANCE_VOICE_NUMBER" => Some("+254 711 000 099".into()),
        "MICROFINANCE_RINGBACK_URL" => Some("https://media.example.test/ringback.mp3".into()),
        _ => None,
    };
    let ivrs = IvrSet::load_dir_with_env(&dir, &env).unwrap();
    assert!(ivrs.by_number("+254711000000").is_none());
    let ivr = ivrs.by_number("254711000099").unwrap();
    let actions = ivr.dtmf_actions(None, Some("0"), BASE).unwrap();
    let Action::Dial(dial) = &actions[1] else {
        panic!("{actions:?}")
    };
    assert_eq!(
        dial.phone_numbers,
        ["+254711000011", "agent@ke.sip.africastalking.com"]
    );
    assert_eq!(
        dial.ringback_tone.as_deref(),
        Some("https://media.example.test/ringback.mp3")
    );
}

#[test]
fn ringback_attribute_follows_render_options() {
    let dial = Action::Dial(Dial {
        phone_numbers: vec!["+254711000001".into()],
        ringback_tone: Some("https://example.test/r.mp3".into()),
        ..Dial::default()
    });
    let default = render(std::slice::from_ref(&dial), &RenderOptions::default());
    assert!(
        default.contains(r#" ringbackTone="https://example.test/r.mp3""#),
        "{default}"
    );
    let opts = RenderOptions {
        ringback_attribute: "ringBackTone".into(),
    };
    let xml = render(&[dial], &opts);
    assert!(
        xml.contains(r#" ringBackTone="https://example.test/r.mp3""#),
        "{xml}"
    );
    assert_eq!(
        parse(&xml).unwrap().children[0].attr("ringBackTone"),
        Some("https://example.test/r.mp3")
    );
}

#[test]
fn unknown_number_or_ivr_is_a_polite_say() {
    let expected =
        format!("{DECL}<Response><Say>Sorry, this number is not in service.</Say></Response>");
    let body = "isActive=1&sessionId=s&direction=Inbound&callerNumber=%2B254700000001&destinationNumber=%2B254799999999";
    let ivrs = microfinance();
    let o = RenderOptions::default();
    assert_eq!(
        xml_of(answer(&ivrs, VoicePath::Callback, &cb(body), BASE, &o)),
        expected
    );
    let path = VoicePath::Dtmf {
        ivr: "nope".into(),
        menu: None,
    };
    assert_eq!(
        xml_of(answer(
            &ivrs,
            path,
            &cb("isActive=1&sessionId=s&dtmfDigits=1"),
            BASE,
            &o
        )),
        expected
    );
    let path = VoicePath::Menu {
        ivr: "microfinance".into(),
        menu: Some("nope".into()),
    };
    assert_eq!(
        xml_of(answer(&ivrs, path, &cb("isActive=1&sessionId=s"), BASE, &o)),
        expected
    );
    parse(&expected).unwrap();
}

#[tokio::test]
async fn final_callback_is_recorded_and_stored() {
    let body = "isActive=0&sessionId=ATVId_b2be&direction=Inbound&callerNumber=%2B254700000001\
        &destinationNumber=%2B254711000000&durationInSeconds=420&currencyCode=KES&amount=100\
        &hangupCause=NORMAL_CLEARING&callSessionState=Completed&callStartTime=2022-03-01%2B16%3A13%3A56\
        &recordingUrl=&callerCarrierName=Safaricom&callerCountryCode=KE";
    let call = cb(body);
    assert!(!call.is_active);
    assert_eq!(call.duration_seconds, Some(420));
    assert_eq!(call.amount.as_deref(), Some("100"));
    assert_eq!(call.currency_code.as_deref(), Some("KES"));
    assert_eq!(call.hangup_cause.as_deref(), Some("NORMAL_CLEARING"));
    assert_eq!(call.call_start_time.as_deref(), Some("2022-03-01+16:13:56"));
    assert_eq!(call.recording_url, None);
    for path in [
        VoicePath::Callback,
        VoicePath::Dtmf {
            ivr: "microfinance".into(),
            menu: None,
        },
    ] {
        assert_eq!(
            answer(
                &microfinance(),
                path,
                &call,
                BASE,
                &RenderOptions::default()
            ),
            VoiceAnswer::Recorded
        );
    }

    let store = Store::temporary().unwrap();
    store_call_record(&store, &call).await.unwrap();
    store_call_record(
        &store,
        &cb("isActive=0&sessionId=ATVId_2&durationInSeconds=5"),
    )
    .await
    .unwrap();
    let records = call_records(&store).await.unwrap();
    assert_eq!(records.len(), 2);
    let r = &records[0];
    assert_eq!(r.session_id, "ATVId_b2be");
    assert_eq!(r.caller.as_deref(), Some("254700000001"));
    assert_eq!(r.destination.as_deref(), Some("254711000000"));
    assert_eq!(r.direction.as_deref(), Some("Inbound"));
    assert_eq!(r.duration_seconds, Some(420));
    assert_eq!(
        (r.currency.as_deref(), r.amount.as_deref()),
        (Some("KES"), Some("100"))
    );
    assert_eq!(r.hangup_cause.as_deref(), Some("NORMAL_CLEARING"));
    assert_eq!(r.call_start_time.as_deref(), Some("2022-03-01+16:13:56"));
    assert!(
        r.recorded_at.parse::<jiff::Timestamp>().is_ok(),
        "{}",
        r.recorded_at
    );
    assert_eq!(records[1].session_id, "ATVId_2");
}

#[test]
fn bad_callbacks_are_400s() {
    for (body, err) in [
        ("sessionId=s", "missing field isActive"),
        ("isActive=&sessionId=s", "missing field isActive"),
        ("isActive=2&sessionId=s", "isActive must be 0 or 1"),
        ("isActive=true&sessionId=s", "isActive must be 0 or 1"),
        ("isActive=1", "missing field sessionId"),
        ("isActive=1&sessionId=", "missing field sessionId"),
        ("", "missing field isActive"),
    ] {
        assert_eq!(parse_callback(body.as_bytes()).unwrap_err(), err, "{body}");
    }
}

#[test]
fn every_action_with_every_attribute() {
    let say = Say {
        text: "Hi".into(),
        voice: Some("woman".into()),
        play_beep: Some(true),
    };
    let play = Play {
        url: "https://example.test/a.mp3".into(),
    };
    let actions = [
        Action::Say(say.clone()),
        Action::Play(play.clone()),
        Action::GetDigits(GetDigits {
            prompt: Some(Prompt::Play(play.clone())),
            num_digits: Some(4),
            timeout: Some(20),
            finish_on_key: Some("*".into()),
            callback_url: Some("https://example.test/d".into()),
        }),
        Action::Dial(Dial {
            phone_numbers: vec!["+254711000001".into(), "a@ke.sip.africastalking.com".into()],
            record: Some(true),
            sequential: Some(false),
            caller_id: Some("+254711000000".into()),
            ringback_tone: Some("https://example.test/r.mp3".into()),
            max_duration: Some(120),
        }),
        Action::Record(Record {
            prompt: Some(Prompt::Say(say)),
            finish_on_key: Some("#".into()),
            max_length: Some(10),
            timeout: Some(30),
            trim_silence: Some(true),
            play_beep: Some(false),
            callback_url: Some("https://example.test/rec".into()),
        }),
        Action::Record(Record::default()),
        Action::Enqueue(Enqueue {
            hold_music: Some("https://example.test/h.wav".into()),
            name: Some("support".into()),
        }),
        Action::Dequeue(Dequeue {
            phone_number: "+254711000000".into(),
            name: Some("support".into()),
        }),
        Action::Conference,
        Action::Redirect("https://example.test/next".into()),
    ];
    let xml = render(&actions, &RenderOptions::default());
    assert_eq!(
        xml,
        format!(
            "{DECL}<Response>\
             <Say voice=\"woman\" playBeep=\"true\">Hi</Say>\
             <Play url=\"https://example.test/a.mp3\"/>\
             <GetDigits timeout=\"20\" finishOnKey=\"*\" numDigits=\"4\" callbackUrl=\"https://example.test/d\">\
             <Play url=\"https://example.test/a.mp3\"/></GetDigits>\
             <Dial phoneNumbers=\"+254711000001,a@ke.sip.africastalking.com\" record=\"true\" sequential=\"false\" \
             callerId=\"+254711000000\" ringbackTone=\"https://example.test/r.mp3\" maxDuration=\"120\"/>\
             <Record finishOnKey=\"#\" maxLength=\"10\" timeout=\"30\" trimSilence=\"true\" playBeep=\"false\" \
             callbackUrl=\"https://example.test/rec\"><Say voice=\"woman\" playBeep=\"true\">Hi</Say></Record>\
             <Record/>\
             <Enqueue holdMusic=\"https://example.test/h.wav\" name=\"support\"/>\
             <Dequeue phoneNumber=\"+254711000000\" name=\"support\"/>\
             <Conference/>\
             <Redirect>https://example.test/next</Redirect>\
             </Response>"
        )
    );
    let root = parse(&xml).unwrap();
    assert_eq!(
        root.names(),
        [
            "Say",
            "Play",
            "GetDigits",
            "Dial",
            "Record",
            "Record",
            "Enqueue",
            "Dequeue",
            "Conference",
            "Redirect"
        ]
    );
    assert_eq!(root.children[2].children[0].name, "Play");
    assert_eq!(root.children[4].children[0].text, "Hi");
    assert_eq!(root.children[3].attrs.len(), 6);
    assert_eq!(root.children[4].attrs.len(), 6);
    // Reject is only ever alone.
    let xml = render(
        &[Action::Say(Say::text("x")), Action::Reject],
        &RenderOptions::default(),
    );
    assert_eq!(xml, format!("{DECL}<Response><Reject/></Response>"));
    assert_eq!(parse(&xml).unwrap().names(), ["Reject"]);
}

#[test]
fn texts_and_attributes_are_escaped() {
    let nasty = r#"<Say>&amp; "quoted" 'single' </Response> Karibu — 日本 😀"#;
    let actions = [
        Action::Say(Say {
            text: nasty.into(),
            voice: Some(nasty.into()),
            play_beep: None,
        }),
        Action::Dial(Dial {
            phone_numbers: vec![nasty.into()],
            ringback_tone: Some(nasty.into()),
            ..Dial::default()
        }),
        Action::Redirect(nasty.into()),
    ];
    let xml = render(&actions, &RenderOptions::default());
    assert!(
        xml.contains(
            "&lt;Say&gt;&amp;amp; &quot;quoted&quot; &apos;single&apos; &lt;/Response&gt;"
        ),
        "{xml}"
    );
    let root = parse(&xml).unwrap();
    assert_eq!(root.names(), ["Say", "Dial", "Redirect"]);
    assert_eq!(root.children[0].text, nasty);
    assert_eq!(root.children[0].attr("voice"), Some(nasty));
    assert_eq!(root.children[1].attr("phoneNumbers"), Some(nasty));
    assert_eq!(root.children[1].attr("ringbackTone"), Some(nasty));
    assert_eq!(root.children[2].text, nasty);
}

fn load_err(yaml: &str) -> Vec<String> {
    IvrSet::parse_one("broken.yaml", yaml, &|_| None).unwrap_err()
}

const HEAD: &str = "number: \"+254711000000\"\nstart: menu\n";

#[test]
fn loader_errors_name_file_and_path() {
    let yaml = format!(
        "{HEAD}menus:\n  menu:\n    prompt: {{ say: \"Hi\" }}\n    finish_on_key: \"#\"\n    num_digits: 1\n\
         \x20   routes: {{ \"0\": salse, \"x\": sales, \"1#\": sales, \"12\": sales }}\n    no_input: bye\n\
         actions:\n  sales:\n    - say: \"Hold\"\n    - reject\n\
         \x20 support:\n    - dial: {{ numbers: [] }}\n\
         \x20 bad:\n    - dial: {{ numbers: [\"0711000001\", \"${{NOPE}}\"] }}\n    - menu: nowhere\n    - say: \"\"\n"
    );
    assert_eq!(
        load_err(&yaml),
        [
            r#"broken.yaml: menus.menu.routes."0": unknown target "salse" (not a menu or an action list)"#,
            r#"broken.yaml: menus.menu.routes."1#": contains the finish_on_key and can never be matched"#,
            r#"broken.yaml: menus.menu.routes."12": is longer than num_digits"#,
            r#"broken.yaml: menus.menu.routes."x": digits key must be 1 or more of 0-9 * #"#,
            r#"broken.yaml: menus.menu.no_input: unknown target "bye" (not a menu or an action list)"#,
            r#"broken.yaml: actions.bad[0].dial.numbers[0]: "0711000001" is not a + international number or a SIP address"#,
            r#"broken.yaml: actions.bad[0].dial.numbers[1]: environment variable NOPE is not set"#,
            r#"broken.yaml: actions.bad[1]: nothing after a redirect, menu or terminal record ever runs"#,
            r#"broken.yaml: actions.bad[1]: unknown menu "nowhere""#,
            r#"broken.yaml: actions.bad[2].say: the text is empty"#,
            r#"broken.yaml: actions.sales: reject must be the only action of its list"#,
            r#"broken.yaml: actions.support[0].dial.numbers: the phone list is empty"#,
        ]
    );
}

#[test]
fn loader_refuses_bad_headers_and_unknown_keys() {
    // Unquoted digit keys are read as the digits they look like.
    let ivr = IvrSet::parse_one(
        "ok.yaml",
        &format!("{HEAD}menus:\n  menu: {{ routes: {{ 0: menu, 12: menu }} }}\n"),
        &|_| None,
    )
    .unwrap();
    assert_eq!(
        ivr.menu("menu").unwrap().routes.keys().collect::<Vec<_>>(),
        ["0", "12"]
    );
    assert_eq!(
        load_err("number: \"0711\"\nstart: main\nmenus:\n  menu: { finish_on_key: \"##\" }\n"),
        [
            r#"broken.yaml: number: "0711" is not a + international phone number"#,
            r#"broken.yaml: start: "main" is not a menu"#,
            r###"broken.yaml: menus.menu.finish_on_key: "##" must be one of 0-9 * #"###,
        ]
    );
    let unknown = load_err(&format!(
        "{HEAD}menus:\n  menu: {{ promt: {{ say: Hi }} }}\n"
    ));
    assert_eq!(unknown.len(), 1);
    assert!(
        unknown[0].starts_with("broken.yaml: menus.menu: unknown field `promt`"),
        "{unknown:?}"
    );
}

/// A ringback is an explicit http(s) URL or nothing: `${VAR:-}` with VAR unset leaves the
/// attribute out (nothing on the gateway serves audio).
#[test]
fn ringback_is_an_explicit_url_or_left_out() {
    let yaml = |ringback: &str| {
        format!(
            "{HEAD}menus:\n  menu: {{ routes: {{ \"0\": sales }} }}\nactions:\n  sales:\n    - dial: {{ numbers: [\"+254711000001\"], ringback: \"{ringback}\" }}\n"
        )
    };
    let ivr = IvrSet::parse_one("x.yaml", &yaml("${RINGBACK:-}"), &|_| None).unwrap();
    let actions = ivr.dtmf_actions(None, Some("0"), BASE).unwrap();
    let Action::Dial(dial) = &actions[0] else {
        panic!("{actions:?}")
    };
    assert_eq!(dial.ringback_tone, None);
    assert_eq!(
        load_err(&yaml("media/ringback.mp3")),
        [
            r#"broken.yaml: actions.sales[0].dial.ringback: "media/ringback.mp3" is not an http:// or https:// URL"#
        ]
    );
}

/// Calls are placed from the number an IVR answers: the only IVR's, or a configured one that an
/// IVR answers; a configured number no IVR answers is refused.
#[test]
fn the_calling_number_is_one_an_ivr_answers() {
    let ivrs = microfinance();
    assert_eq!(
        ivrs.calling_number(None).unwrap().as_deref(),
        Some("+254711000000")
    );
    assert_eq!(
        ivrs.calling_number(Some("254 711 000000"))
            .unwrap()
            .as_deref(),
        Some("+254711000000")
    );
    let refused = ivrs.calling_number(Some("+254799999999")).unwrap_err();
    assert!(
        refused.starts_with("africastalking.voice_number +254799999999: no IVR answers it"),
        "{refused}"
    );
    // No IVR here (callbacks answered elsewhere): nothing to disagree with.
    assert_eq!(
        IvrSet::default()
            .calling_number(Some("+254799999999"))
            .unwrap()
            .as_deref(),
        Some("+254799999999")
    );
    assert_eq!(IvrSet::default().calling_number(None).unwrap(), None);
}

#[test]
fn two_ivrs_cannot_share_a_number() {
    let dir = tempfile::tempdir().unwrap();
    let ok = format!("{HEAD}menus:\n  menu: {{}}\n");
    std::fs::write(dir.path().join("a.yaml"), &ok).unwrap();
    std::fs::write(dir.path().join("b.yml"), &ok).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
    let errors = IvrSet::load_dir_with_env(dir.path(), &|_| None).unwrap_err();
    assert_eq!(
        errors,
        ["b.yml: number: +254711000000 is already answered by a.yaml"]
    );
}

proptest! {
    #[test]
    fn say_text_never_breaks_the_xml(text in any::<String>(), voice in any::<String>()) {
        let say = Say { text: text.clone(), voice: Some(voice), play_beep: None };
        let xml = render(&[Action::Say(say)], &RenderOptions::default());
        let root = parse(&xml).map_err(|e| TestCaseError::fail(format!("{e}: {xml}")))?;
        let kept: String = text.chars().filter(|&c| xml::is_xml_char(c)).collect();
        prop_assert_eq!(&root.children[0].text, &kept);
    }

    #[test]
    fn dtmf_digits_never_break_the_xml(digits in any::<String>(), menu in proptest::option::of("[a-z<&]{1,6}")) {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("isActive", "1")
            .append_pair("sessionId", "ATVId_p")
            .append_pair("dtmfDigits", &digits)
            .finish();
        let call = parse_callback(body.as_bytes()).unwrap();
        let ivrs = microfinance();
        for path in [VoicePath::Dtmf { ivr: "microfinance".into(), menu: menu.clone() }, VoicePath::Callback] {
            let xml = xml_of(answer(&ivrs, path, &call, BASE, &RenderOptions::default()));
            parse(&xml).map_err(|e| TestCaseError::fail(format!("{e}: {xml}")))?;
        }
    }
}

#[test]
fn other_menus_have_urls_of_their_own() {
    let yaml = format!(
        "{HEAD}menus:\n  menu: {{ prompt: {{ play: \"https://example.test/m.mp3\" }}, routes: {{ \"1\": loans }} }}\n  \
         loans: {{ prompt: {{ say: {{ text: Loans, voice: man }} }}, num_digits: 1, routes: {{ \"0\": back }} }}\n\
         actions:\n  back: [ {{ say: Back }}, {{ menu: menu }} ]\n"
    );
    let ivr = IvrSet::parse_one("x.yaml", &yaml, &|_| None).unwrap();
    let ivrs = IvrSet::from_ivrs(vec![ivr]).unwrap();
    let o = RenderOptions::default();
    let call = cb("isActive=1&sessionId=s&dtmfDigits=1");
    let path = VoicePath::from_path("/voice/dtmf/x").unwrap();
    assert_eq!(
        xml_of(answer(&ivrs, path, &call, BASE, &o)),
        format!("{DECL}<Response><Redirect>{BASE}/voice/menu/x/loans</Redirect></Response>")
    );
    let path = VoicePath::from_path("/voice/menu/x/loans").unwrap();
    assert_eq!(
        xml_of(answer(&ivrs, path, &call, BASE, &o)),
        format!(
            "{DECL}<Response><GetDigits numDigits=\"1\" callbackUrl=\"{BASE}/voice/dtmf/x/loans\">\
             <Say voice=\"man\">Loans</Say></GetDigits></Response>"
        )
    );
    let path = VoicePath::from_path("/voice/dtmf/x/loans").unwrap();
    let back = cb("isActive=1&sessionId=s&dtmfDigits=0");
    assert_eq!(
        xml_of(answer(&ivrs, path, &back, BASE, &o)),
        format!(
            "{DECL}<Response><Say>Back</Say><Redirect>{BASE}/voice/menu/x</Redirect></Response>"
        )
    );
    // An unrouted digit with no default hears the menu again; nothing pressed ends the call.
    let path = VoicePath::from_path("/voice/dtmf/x").unwrap();
    let other = cb("isActive=1&sessionId=s&dtmfDigits=7");
    assert!(
        xml_of(answer(&ivrs, path.clone(), &other, BASE, &o))
            .contains("<Redirect>http://127.0.0.1:8080/voice/menu/x</Redirect>")
    );
    let none = cb("isActive=1&sessionId=s");
    assert_eq!(
        xml_of(answer(&ivrs, path, &none, BASE, &o)),
        format!("{DECL}<Response/>")
    );
}

#[test]
fn a_dialled_party_picking_up_keeps_the_bridge() {
    let body = "isActive=1&sessionId=s&direction=Inbound&destinationNumber=%2B254711000000&dialDestinationNumber=%2B254711000001";
    let xml = xml_of(answer(
        &microfinance(),
        VoicePath::Callback,
        &cb(body),
        BASE,
        &RenderOptions::default(),
    ));
    assert_eq!(xml, format!("{DECL}<Response/>"));
    assert!(parse(&xml).unwrap().children.is_empty());
}
