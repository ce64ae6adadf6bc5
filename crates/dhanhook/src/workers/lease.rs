//! A worker's hold on a journal lease: what makes "one instance does this" true when several
//! instances share the journal (the order tracker polls, the order feed holds Dhan's one
//! connection per account).
//!
//! The holder renews once half the lease has passed; an instance without it tries to take it
//! every half lease. When the journal cannot be reached, the holder carries on only while its
//! last lease surely still holds, so two instances never both believe they hold it.

use chrono::{DateTime, Duration, Utc};

use crate::store::Leases;

#[derive(Debug)]
pub struct HeldLease {
    name: &'static str,
    holder: String,
    length: Duration,
    /// Until when this instance holds the lease.
    until: Option<DateTime<Utc>>,
    /// When an instance without the lease next tries to take it.
    next_try: DateTime<Utc>,
}

impl HeldLease {
    /// A lease called `name`, held `length` at a time, for a new holder id.
    pub fn new(name: &'static str, length: Duration) -> Self {
        Self {
            name,
            holder: uuid::Uuid::now_v7().to_string(),
            length,
            until: None,
            next_try: DateTime::<Utc>::MIN_UTC,
        }
    }

    /// When the next renewal (or try) is due.
    pub fn next_check(&self) -> DateTime<Utc> {
        match self.until {
            Some(until) => until - self.length / 2,
            None => self.next_try,
        }
    }

    /// Whether this instance holds the lease at `now`, renewing or taking it when due.
    pub async fn hold(&mut self, leases: &dyn Leases, now: DateTime<Utc>) -> bool {
        match self.until {
            Some(until) if now + self.length / 2 < until => return true,
            None if now < self.next_try => return false,
            _ => {}
        }
        let until = now + self.length;
        match leases.try_lease(self.name, &self.holder, until, now).await {
            Ok(true) => {
                self.until = Some(until);
                true
            }
            Ok(false) => {
                self.until = None;
                self.next_try = now + self.length / 2;
                false
            }
            Err(e) => {
                tracing::warn!(lease = self.name, error = %e, "could not renew or take a lease");
                self.until = self.until.filter(|u| now < *u);
                if self.until.is_none() {
                    self.next_try = now + self.length / 2;
                }
                self.until.is_some()
            }
        }
    }

    /// Gives the lease up (at shutdown), so that another instance takes over at once.
    pub async fn release(&mut self, leases: &dyn Leases) {
        if self.until.take().is_none() {
            return;
        }
        if let Err(e) = leases.release_lease(self.name, &self.holder).await {
            tracing::warn!(lease = self.name, error = %e, "could not release a lease; it lapses by itself");
        }
    }
}
