//! End-to-end tests of the service over real HTTP on 127.0.0.1, one test binary (faster to
//! link). `helpers` starts the real application on port 0 with a temporary data folder.

mod check;
mod cli;
mod connections;
mod controls;
mod crash;
mod dashboard;
mod dedupe;
mod dhan_client;
mod faults;
mod guide;
mod helpers;
mod instruments;
mod journal_contract;
mod lifecycle;
mod live;
mod metrics;
mod multi;
mod notify;
mod ops;
mod order_feed;
mod positions;
mod restart;
mod routing;
mod upstream;
mod webhook;
mod workers;
