//! Dhan API v2: the HTTP client ([`client`]) and its transport ([`transport`]: hyper with
//! `TCP_QUICKACK`), its request/response shapes ([`types`]), error
//! classification ([`error`]), token claims ([`jwt`]) and the order-update WebSocket's frames
//! ([`order_feed`]). Facts behind all of it are in
//! `docs/dhan-api.md` of the project's shared docs.

pub mod client;
pub mod error;
pub mod jwt;
pub mod order_feed;
mod transport;
pub mod types;

pub use client::{DhanClient, DhanUrls};
pub use error::{DhanError, DhanErrorKind};
