//! SMPP connections: one link, and the two ways the gateway gets one.
//!
//! - [`link`]: one connection (reader, writer task, window matched by sequence number,
//!   response timeouts, throttling back-off, keep-alive);
//! - [`esme`]: the gateway binds to operators (`[[smpp.binds]]`), keeps the binds up
//!   (enquire_link, reconnect with capped back-off and jitter) and unbinds on shutdown;
//! - [`listener`]: the gateway accepts binds from configured peers (`[smpp.listener]`), with
//!   credentials and the bind state machine checked, and the directions reversed.

pub mod esme;
pub mod link;
pub mod listener;
