//! Framing: rusmpp's `CommandCodec` under a frame check of our own, so bad input is answered.
//!
//! rusmpp's codec reports a malformed body as a bare error: the sequence number is lost and
//! tokio's `Framed` ends the stream after it. Here the 16-byte header is read first and the
//! whole frame is cut out of the buffer before rusmpp decodes it, so:
//!
//! - a body that does not decode becomes [`Frame::Malformed`] with the header's command id and
//!   sequence number (answered with generic_nack / an error response), and the next PDU starts
//!   exactly where this one ended: the connection lives on;
//! - a `command_length` below 16 or above the configured maximum becomes [`Frame::BadLength`]:
//!   the stream cannot be resynchronised, so the connection answers generic_nack
//!   ESME_RINVCMDLEN and closes (SMPP 3.4 §3.3); nothing more is read from it.

use bytes::{Buf, BytesMut};
use rusmpp::tokio_codec::CommandCodec;
use rusmpp::{Command, CommandId};
use tokio_util::codec::{Decoder, Encoder};

/// Length of the SMPP header.
pub const HEADER_LEN: usize = 16;

/// One inbound unit.
#[derive(Debug)]
pub enum Frame {
    /// A PDU that decoded (boxed: a PDU is large next to the other variants).
    Command(Box<Command>),
    /// A PDU whose body did not decode.
    Malformed {
        /// The header's command_id.
        command_id: u32,
        /// The header's sequence_number.
        sequence_number: u32,
        /// What rusmpp said.
        reason: String,
    },
    /// A command_length out of bounds; the connection must close after answering.
    BadLength {
        /// The header's sequence_number, when the header was there to read.
        sequence_number: u32,
        /// The declared length.
        length: u32,
    },
}

/// The gateway's SMPP codec.
#[derive(Debug)]
pub struct SmppCodec {
    inner: CommandCodec,
    max_len: usize,
    poisoned: bool,
}

impl SmppCodec {
    /// A codec refusing PDUs longer than `max_len` octets.
    pub fn new(max_len: usize) -> SmppCodec {
        SmppCodec {
            inner: CommandCodec::new().without_max_length(),
            max_len,
            poisoned: false,
        }
    }
}

impl Decoder for SmppCodec {
    type Item = Frame;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, std::io::Error> {
        if self.poisoned {
            src.clear();
            return Ok(None);
        }
        if src.len() < HEADER_LEN {
            return Ok(None);
        }
        let word = |at: usize| u32::from_be_bytes([src[at], src[at + 1], src[at + 2], src[at + 3]]);
        let (length, command_id, sequence_number) = (word(0), word(4), word(12));
        let len = length as usize;
        if len < HEADER_LEN || len > self.max_len {
            self.poisoned = true;
            src.clear();
            return Ok(Some(Frame::BadLength {
                sequence_number,
                length,
            }));
        }
        if src.len() < len {
            src.reserve(len - src.len());
            return Ok(None);
        }
        let mut frame = src.split_to(len);
        match self.inner.decode(&mut frame) {
            // rusmpp decodes a request whose body is missing (command_length 16) as a command
            // without a PDU; answered as such it would get a misleading status (a bind or a
            // submit_sm without a body is not "not bound"): it is malformed. Responses may come
            // without a body (SMPP 3.4 omits it when command_status is not 0), and unknown
            // command ids get their own answer (ESME_RINVCMDID), so both stay commands.
            Ok(Some(command))
                if command.pdu().is_none()
                    && len == HEADER_LEN
                    && command_id & 0x8000_0000 == 0
                    && !matches!(command.id(), CommandId::Other(_)) =>
            {
                Ok(Some(Frame::Malformed {
                    command_id,
                    sequence_number,
                    reason: "body missing".into(),
                }))
            }
            Ok(Some(command)) => Ok(Some(Frame::Command(Box::new(command)))),
            // The frame is complete, so the inner codec cannot be waiting for more: treat it
            // as malformed rather than stall.
            Ok(None) => {
                self.inner = CommandCodec::new().without_max_length();
                Ok(Some(Frame::Malformed {
                    command_id,
                    sequence_number,
                    reason: "incomplete body".into(),
                }))
            }
            Err(e) => Ok(Some(Frame::Malformed {
                command_id,
                sequence_number,
                reason: e.to_string(),
            })),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, std::io::Error> {
        let frame = self.decode(src)?;
        if frame.is_none() && src.has_remaining() {
            // A truncated PDU at the end of the stream: nothing to answer on a closed socket.
            src.clear();
        }
        Ok(frame)
    }
}

impl Encoder<Command> for SmppCodec {
    type Error = std::io::Error;

    fn encode(&mut self, item: Command, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        self.inner
            .encode(item, dst)
            .map_err(|e| std::io::Error::other(e.to_string()))
    }
}

/// The header fields of an encoded PDU, for tests and logs: (length, id, status, sequence).
pub fn header(bytes: &[u8]) -> Option<(u32, u32, u32, u32)> {
    let w = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    Some((w(0)?, w(4)?, w(8)?, w(12)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusmpp::{CommandStatus, Pdu};

    fn enquire_link(seq: u32) -> Vec<u8> {
        let mut b = BytesMut::new();
        SmppCodec::new(4096)
            .encode(
                Command::new(CommandStatus::EsmeRok, seq, Pdu::EnquireLink),
                &mut b,
            )
            .unwrap();
        b.to_vec()
    }

    #[test]
    fn a_malformed_body_keeps_the_stream_aligned() {
        let mut c = SmppCodec::new(4096);
        // submit_sm whose body is 3 junk octets (no C-strings terminate).
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[
            0, 0, 0, 19, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 9, 0x41, 0x42, 0x43,
        ]);
        buf.extend_from_slice(&enquire_link(10));
        match c.decode(&mut buf).unwrap() {
            Some(Frame::Malformed {
                command_id: 4,
                sequence_number: 9,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        match c.decode(&mut buf).unwrap() {
            Some(Frame::Command(cmd)) => assert_eq!(cmd.sequence_number(), 10),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_request_without_its_body_is_malformed() {
        // Found by the smpp_decode fuzz target: rusmpp decodes a body-less bind or submit_sm
        // as a command without a PDU, which the roles answered ESME_RINVBNDSTS.
        let mut c = SmppCodec::new(4096);
        for id in [4u8, 9] {
            let mut buf = BytesMut::from(&[0u8, 0, 0, 16, 0, 0, 0, id, 0, 0, 0, 0, 0, 0, 0, 7][..]);
            match c.decode(&mut buf).unwrap() {
                Some(Frame::Malformed {
                    sequence_number: 7, ..
                }) => {}
                other => panic!("{other:?}"),
            }
        }
        // A response without a body (an error status) and an unknown command id stay commands.
        let mut buf =
            BytesMut::from(&[0u8, 0, 0, 16, 0x80, 0, 0, 4, 0, 0, 0, 0x58, 0, 0, 0, 7][..]);
        assert!(matches!(
            c.decode(&mut buf).unwrap(),
            Some(Frame::Command(_))
        ));
        let mut buf = BytesMut::from(&[0u8, 0, 0, 16, 0, 0, 0, 0x77, 0, 0, 0, 0, 0, 0, 0, 7][..]);
        assert!(matches!(
            c.decode(&mut buf).unwrap(),
            Some(Frame::Command(_))
        ));
    }

    #[test]
    fn lengths_out_of_bounds_poison_the_stream() {
        let mut c = SmppCodec::new(64);
        let mut buf = BytesMut::from(&[0u8, 0, 1, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 5][..]);
        assert!(matches!(
            c.decode(&mut buf).unwrap(),
            Some(Frame::BadLength {
                sequence_number: 5,
                length: 256
            })
        ));
        buf.extend_from_slice(&enquire_link(1));
        assert!(c.decode(&mut buf).unwrap().is_none());
        let mut c = SmppCodec::new(64);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 8, 0, 0, 0, 21, 0, 0, 0, 0, 0, 0, 0, 5][..]);
        assert!(matches!(
            c.decode(&mut buf).unwrap(),
            Some(Frame::BadLength { length: 8, .. })
        ));
    }

    #[test]
    fn partial_input_waits() {
        let mut c = SmppCodec::new(4096);
        let whole = enquire_link(3);
        let mut buf = BytesMut::from(&whole[..10]);
        assert!(c.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&whole[10..]);
        assert!(matches!(
            c.decode(&mut buf).unwrap(),
            Some(Frame::Command(_))
        ));
        assert_eq!(header(&whole), Some((16, 0x15, 0, 3)));
    }
}
