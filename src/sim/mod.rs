//! Simulators of the other side, for people and tests: they speak to the gateway from outside,
//! through its fronts' wire formats, and are no part of a front.
//!
//! - [`dial`]: `ussd-gateway dial`, the aggregator (Africa's Talking's USSD callback, or any
//!   HTTP dialect's: [`dial_wire`]) at a terminal;
//! - [`operator`]: the operator's SMSC / USSD centre over SMPP, which the integration tests
//!   drive for every shipped profile; [`operator_term`]: `ussd-gateway operator-sim`, the same
//!   at a terminal.

pub mod dial;
pub mod dial_wire;
pub mod operator;
pub mod operator_term;

pub use operator::{OperatorSim, Screen, SimDialogue};
pub use operator_term::{OperatorSimOptions, run_operator_sim};
