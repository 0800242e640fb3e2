//! Error answers: generic_nack, and a request's own `_resp` with an error status.
//!
//! SMPP answers a request it cannot take with the request's own response and an error
//! command_status (an empty body: some peers send none on error, ours carry the minimal one);
//! what has no response of its own, or could not even be read, gets generic_nack.

use rusmpp::{Command, CommandId, CommandStatus, Pdu};

/// A generic_nack.
pub fn nack(status: CommandStatus, seq: u32) -> Command {
    Command::new(status, seq, Pdu::GenericNack)
}

/// The empty response to a request, for answering with an error status; `None` for commands
/// without a response (answered with generic_nack instead).
pub fn empty_response(id: CommandId) -> Option<Pdu> {
    use rusmpp::pdus::{
        BindReceiverResp, BindTransceiverResp, BindTransmitterResp, DataSmResp, DeliverSmResp,
        QuerySmResp, SubmitMultiResp, SubmitSmResp,
    };
    Some(match id {
        CommandId::BindTransmitter => BindTransmitterResp::default().into(),
        CommandId::BindReceiver => BindReceiverResp::default().into(),
        CommandId::BindTransceiver => BindTransceiverResp::default().into(),
        CommandId::SubmitSm => SubmitSmResp::default().into(),
        CommandId::DeliverSm => DeliverSmResp::default().into(),
        CommandId::DataSm => DataSmResp::default().into(),
        CommandId::QuerySm => QuerySmResp::default().into(),
        CommandId::SubmitMulti => SubmitMultiResp::default().into(),
        CommandId::CancelSm => Pdu::CancelSmResp,
        CommandId::ReplaceSm => Pdu::ReplaceSmResp,
        CommandId::Unbind => Pdu::UnbindResp,
        CommandId::EnquireLink => Pdu::EnquireLinkResp,
        _ => return None,
    })
}

/// The response to `cmd` with `status`: its own `_resp` (empty body) or a generic_nack.
pub fn error_response(cmd: &Command, status: CommandStatus) -> Option<Command> {
    let seq = cmd.sequence_number();
    if cmd.id() == CommandId::AlertNotification || cmd.id() == CommandId::Outbind {
        return None;
    }
    Some(match empty_response(cmd.id()) {
        Some(pdu) => Command::new(status, seq, pdu),
        None => nack(status, seq),
    })
}
