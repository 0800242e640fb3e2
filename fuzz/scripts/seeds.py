#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ (run from anywhere; idempotent).

Real PDUs (as the SMPP tests and the reference notes have them), real AT USSD and voice
callbacks, the shipped flow files and the invalid ones of tests/flows/."""
import pathlib, shutil, struct

FUZZ = pathlib.Path(__file__).resolve().parent.parent
ROOT = FUZZ.parent
CORPUS = FUZZ / "corpus"


def c(s):
    return s.encode() + b"\0"


def pdu(cmd, seq, body=b"", status=0):
    return struct.pack(">IIII", 16 + len(body), cmd, status, seq) + body


def tlv(tag, value):
    return struct.pack(">HH", tag, len(value)) + value


def ussd_tlvs(op=None, its=None, umr=None, payload=None):
    out = b""
    if op is not None:
        out += tlv(0x0501, bytes([op]))
    if its is not None:
        out += tlv(0x1383, bytes(its))
    if umr is not None:
        out += tlv(0x0204, struct.pack(">H", umr))
    if payload is not None:
        out += tlv(0x0424, payload)
    return out


def sm_body(src, dst, text, dc=0, esm=0, **tl):
    return (c("USSD") + b"\x01\x01" + c(src) + b"\x00\x00" + c(dst) + bytes([esm, 0, 0]) + c("") + c("")
            + b"\x00\x00" + bytes([dc, 0, len(text)]) + text + ussd_tlvs(**tl))


def data_sm_body(src, dst, dc=0, **tl):
    return c("USSD") + b"\x01\x01" + c(src) + b"\x00\x00" + c(dst) + bytes([0, 0, dc]) + ussd_tlvs(**tl)


def bind(cmd, system_id, password, version=0x34):
    return c(system_id) + c(password) + c("") + bytes([version, 0, 0]) + c("")


BIND_TRX, BIND_TRX_RESP = 0x09, 0x80000009
SUBMIT, DELIVER, DATA_SM, ENQ, UNBIND = 0x04, 0x05, 0x0103, 0x15, 0x06

smpp = {
    "bind_transceiver": pdu(BIND_TRX, 1, bind(BIND_TRX, "fuzz", "pw")),
    "bind_transmitter_v50": pdu(0x02, 1, bind(0x02, "gw", "pw", 0x50)),
    "bind_transceiver_resp": pdu(BIND_TRX_RESP, 1, c("SMSC") + tlv(0x0210, b"\x34")),
    "submit_sm_start_its": pdu(SUBMIT, 2, sm_body("254700000001", "123", b"*123#", op=1, its=[0x2a, 0x00])),
    "deliver_sm_reply_its": pdu(DELIVER, 3, sm_body("254700000001", "123", b"1", op=18, its=[0x2a, 0x02])),
    "deliver_sm_ucs2": pdu(DELIVER, 4, sm_body("254700000001", "123", "Jambo \u260e".encode("utf-16-be"), dc=8, op=18, its=[0x2a, 0x04])),
    "deliver_sm_abort": pdu(DELIVER, 5, sm_body("254700000001", "123", b"", op=0x81, its=[0x2a, 0x05])),
    "deliver_sm_mica_umr": pdu(DELIVER, 6, sm_body("0700000001", "384", b"*384*1#", op=1, umr=77)),
    "deliver_sm_receipt": pdu(DELIVER, 7, sm_body("254700000001", "123", b"id:1 stat:DELIVRD", esm=0x04)),
    "data_sm_payload": pdu(DATA_SM, 8, data_sm_body("254700000001", "123", op=1, its=[0x10, 0x00], payload=b"*123*2#")),
    "enquire_link": pdu(ENQ, 9),
    "enquire_link_resp": pdu(0x80000015, 9),
    "unbind": pdu(UNBIND, 10),
    "generic_nack": pdu(0x80000000, 11, status=3),
    "unknown_command": pdu(0x00000077, 12, b"\x01\x02"),
    "malformed_submit": pdu(SUBMIT, 13, b"ABC"),
    "bad_length": struct.pack(">IIII", 8, 0x15, 0, 14),
    "submit_sm_resp": pdu(0x80000004, 2, c("abc")),
}


def framed(pdus):
    """smpp_session's length-fixing framing: [n_hi n_lo] + command_id.. for each PDU."""
    out = b""
    for p in pdus:
        out += struct.pack(">H", len(p) - 4) + p[4:]
    return out


def session(esme, framing, which, pdus):
    mode = (which << 2) | (2 if framing else 0) | (1 if esme else 0)
    body = framed(pdus) if framing else b"".join(pdus)
    return bytes([mode]) + body


def listener_dialogue(profile):
    its = None if profile == 3 or profile == 5 else [0x2a, 0x00]
    umr = 77 if profile == 3 else None
    if profile == 4:
        start = pdu(DATA_SM, 2, data_sm_body("254700000001", "123", op=1, its=its, payload=b"*123#"))
        reply = pdu(DATA_SM, 4, data_sm_body("254700000001", "123", op=18, its=[0x2a, 0x02], payload=b"1"))
    else:
        start = pdu(SUBMIT, 2, sm_body("254700000001", "123", b"*123#", op=1, its=its, umr=umr))
        reply = pdu(SUBMIT, 4, sm_body("254700000001", "123", b"1", op=18, its=[0x2a, 0x02] if its else None, umr=umr))
    return [smpp["bind_transceiver"], start, smpp["enquire_link"], pdu(0x80000005, 1), reply, smpp["unbind"]]


def esme_dialogue(profile):
    its = None if profile in (3, 5) else [0x2a, 0x00]
    umr = 77 if profile == 3 else None
    if profile == 4:
        start = pdu(DATA_SM, 2, data_sm_body("254700000001", "123", op=1, its=its, payload=b"*123#"))
    else:
        start = pdu(DELIVER, 2, sm_body("254700000001", "123", b"*123#", op=1, its=its, umr=umr))
    return [smpp["bind_transceiver_resp"], start, smpp["enquire_link"], pdu(0x80000004, 2, c("m1")),
            smpp["deliver_sm_abort"], smpp["unknown_command"], smpp["malformed_submit"], smpp["unbind"]]


at = {
    "first_hop": b"sessionId=ATUid_5d2c&serviceCode=%2A384%2A303%23&phoneNumber=%2B254700000001&networkCode=63902&text=",
    "second_hop": b"sessionId=ATUid_5d2c&serviceCode=%2A384%2A303%23&phoneNumber=%2B254700000001&networkCode=63902&text=1",
    "deep_hop_star_input": b"sessionId=ATUid_5d2c&serviceCode=*384*303%23&phoneNumber=0700000001&text=1*2*3*4",
    "prefilled_dial": b"sessionId=s1&serviceCode=*123*1%23&phoneNumber=254711000000&text=",
    "plus_in_phone": b"sessionId=s2&serviceCode=*123%23&phoneNumber=+254 700 000 001&text=98",
    "missing_phone": b"sessionId=s3&serviceCode=*123%23&text=1",
    "derive_star": b"1*2\x003*4",
    "derive_first": b"\x00*",
}

voice = {
    "inbound_call": b"/voice/callback\nisActive=1&sessionId=ATVId_8b1&direction=Inbound&callerNumber=%2B254700000001&destinationNumber=%2B254711000000&callerCarrierName=Safaricom&callerCountryCode=KE&callStartTime=2026-01-05+08%3A00%3A00",
    "dtmf_sales": b"/voice/dtmf/microfinance\nisActive=1&sessionId=ATVId_8b1&direction=Inbound&callerNumber=%2B254700000001&destinationNumber=%2B254711000000&dtmfDigits=0",
    "dtmf_repeat": b"/voice/dtmf/microfinance/menu\nisActive=1&sessionId=ATVId_8b1&dtmfDigits=2%23",
    "menu": b"/voice/menu/microfinance\nisActive=1&sessionId=ATVId_8b1",
    "dial_picked_up": b"/voice/callback\nisActive=1&sessionId=ATVId_8b1&dialDestinationNumber=%2B254711000001&dialStartTime=2026-01-05+08%3A00%3A10",
    "final": b"/voice/callback\nisActive=0&sessionId=ATVId_8b1&direction=Inbound&durationInSeconds=35&currencyCode=KES&amount=1.5000&hangupCause=NORMAL_CLEARING&callSessionState=Completed&recordingUrl=https%3A%2F%2Fexample.test%2Fr.mp3",
    "outbound_answered": b"isActive=1&sessionId=ATVId_9&direction=Outbound&callerNumber=%2B254711000000&destinationNumber=%2B254700000001&clientRequestId=pcm-1",
}

templates = {
    "greeting": b"Welcome {{ name }}",
    "loop": b"Choose:\n{% for i in items %}{{ loop.index }}. {{ i.name }} K{{ i.price }}\n{% endfor %}\x00{{ items | length }}\x00v == 2",
    "filters": b"{{ name | upper }} {{ price | round(1) }} {{ phone[-4:] }} {{ answer | default('none') }}\x00{{ n * 2 }}\x00answer is defined",
    "long": b"{% for x in range(40) %}Line {{ x }} of the long screen\n{% endfor %}",
    "unicode": "Karibu {{ name }} \u260e \u20ac{{ n }}".encode(),
    "broken": b"{{ name ",
}


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


for k, v in smpp.items():
    write("smpp_decode", k, v)
write("smpp_decode", "stream_of_three", smpp["bind_transceiver"] + smpp["submit_sm_start_its"] + smpp["unbind"])
for p in range(6):
    write("smpp_session", f"listener_profile{p}", session(False, p % 2 == 1, p * 2, listener_dialogue(p)))
    write("smpp_session", f"esme_profile{p}", session(True, p % 2 == 0, p * 2 + 1, esme_dialogue(p)))
write("smpp_session", "listener_unbound_submit", session(False, False, 0, [smpp["submit_sm_start_its"], smpp["bind_transceiver"], smpp["bind_transceiver"]]))
write("smpp_session", "listener_after_unbind", session(False, False, 0, [smpp["bind_transceiver"], smpp["unbind"], pdu(ENQ, 40), smpp["submit_sm_start_its"]]))
write("smpp_session", "esme_receipt_and_bad_input", session(True, False, 1, [smpp["bind_transceiver_resp"], smpp["deliver_sm_receipt"], smpp["malformed_submit"], pdu(DELIVER, 41), smpp["bad_length"], smpp["enquire_link"]]))
write("smpp_session", "listener_wrong_password", session(False, True, 0, [pdu(BIND_TRX, 1, bind(BIND_TRX, "fuzz", "nope")), smpp["bad_length"]]))
for k, v in at.items():
    write("at_form", k, v)
for f in sorted((ROOT / "config" / "flows").glob("*.yaml")) + sorted((ROOT / "tests" / "flows").glob("*.yaml")):
    write("flow_load", f.name, f.read_bytes())
for k, v in templates.items():
    write("template_render", k, v)
for k, v in voice.items():
    write("voice_callback", k, v)
for t in ["smpp_decode", "smpp_session", "at_form", "flow_load", "template_render", "voice_callback"]:
    (FUZZ / "regressions" / t).mkdir(parents=True, exist_ok=True)
    keep = FUZZ / "regressions" / t / ".gitkeep"
    if not any((FUZZ / "regressions" / t).iterdir()):
        keep.write_bytes(b"")
