//! Faults a test can inject into the next matching requests, and the queue that holds them.

use std::time::Duration;

/// A misbehaviour of Dhan that a test wants to see handled.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// POST /v2/orders: wait this long (real time) then answer normally (order accepted).
    OrderDelay(Duration),
    /// POST /v2/orders: 500 DH-908 and NO order is created.
    Order5xxBeforeAccept,
    /// POST /v2/orders: the order IS created, then 500 DH-908 is returned.
    Order5xxAfterAccept,
    /// POST /v2/orders: the order IS created, then the connection is dropped without a complete response.
    OrderDropAfterAccept,
    /// POST /v2/orders: 429 DH-904, no order created.
    OrderRateLimited,
    /// Any REST (/v2/...) call: 401 DH-901 as if the token were invalid.
    AuthFailure,
    /// POST /app/generateAccessToken: fails with a 500, no token issued.
    Mint5xx,
    /// Any REST read (GET /v2/...): 500 DH-908, as a passing server failure.
    Read5xx,
}

/// The point in request handling at which a fault can fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultPoint {
    /// Any `/v2/...` request, before the token is checked.
    Rest,
    /// `POST /v2/orders`, after the token check and before anything else.
    OrderBeforeAccept,
    /// `POST /v2/orders`, once the order has been created.
    OrderAfterAccept,
    /// `POST /app/generateAccessToken`, before anything else.
    Mint,
    /// Any `GET /v2/...`, before the token is checked.
    RestRead,
}

impl Fault {
    fn point(&self) -> FaultPoint {
        match self {
            Fault::OrderDelay(_) | Fault::Order5xxBeforeAccept | Fault::OrderRateLimited => {
                FaultPoint::OrderBeforeAccept
            }
            Fault::Order5xxAfterAccept | Fault::OrderDropAfterAccept => {
                FaultPoint::OrderAfterAccept
            }
            Fault::AuthFailure => FaultPoint::Rest,
            Fault::Mint5xx => FaultPoint::Mint,
            Fault::Read5xx => FaultPoint::RestRead,
        }
    }
}

/// Injected faults with the number of requests each still applies to, in injection order.
#[derive(Debug, Default)]
pub(crate) struct FaultQueue {
    entries: Vec<(Fault, usize)>,
}

impl FaultQueue {
    pub(crate) fn inject(&mut self, fault: Fault, times: usize) {
        if times > 0 {
            self.entries.push((fault, times));
        }
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// Takes one use of the oldest fault that fires at `point`, if any.
    pub(crate) fn take(&mut self, point: FaultPoint) -> Option<Fault> {
        let idx = self.entries.iter().position(|(f, _)| f.point() == point)?;
        let (fault, remaining) = &mut self.entries[idx];
        let fault = fault.clone();
        *remaining -= 1;
        if *remaining == 0 {
            self.entries.remove(idx);
        }
        Some(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_used_up_in_order() {
        let mut q = FaultQueue::default();
        q.inject(Fault::Order5xxBeforeAccept, 1);
        q.inject(Fault::OrderRateLimited, 2);
        q.inject(Fault::AuthFailure, 0);
        assert_eq!(q.take(FaultPoint::Rest), None);
        assert_eq!(
            q.take(FaultPoint::OrderBeforeAccept),
            Some(Fault::Order5xxBeforeAccept)
        );
        assert_eq!(
            q.take(FaultPoint::OrderBeforeAccept),
            Some(Fault::OrderRateLimited)
        );
        assert_eq!(
            q.take(FaultPoint::OrderBeforeAccept),
            Some(Fault::OrderRateLimited)
        );
        assert_eq!(q.take(FaultPoint::OrderBeforeAccept), None);
        q.inject(Fault::Mint5xx, 3);
        q.clear();
        assert_eq!(q.take(FaultPoint::Mint), None);
    }
}
