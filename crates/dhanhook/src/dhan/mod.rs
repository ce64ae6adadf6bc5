//! Dhan API v2: the HTTP client ([`client`]), its request/response shapes ([`types`]), error
//! classification ([`error`]) and token claims ([`jwt`]). Facts behind all of it are in
//! `docs/dhan-api.md` of the project's shared docs.

pub mod client;
pub mod error;
pub mod jwt;
pub mod types;

pub use client::{DhanClient, DhanUrls};
pub use error::{DhanError, DhanErrorKind};
