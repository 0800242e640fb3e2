//! Fronts: where dialogues come in. Each translates its wire format into a
//! [`crate::hop::Hop`] and a [`crate::hop::Reply`] back, and does nothing else.

pub mod http;
pub mod smpp;
