//! Contract cases for the send gate's day counts (`MAX_ORDERS_PER_DAY` and its per-strategy
//! twin): each leg counts once on the day it is first sent, a re-send the same day does not
//! count again, a blocked leg does not count, a new IST day starts from zero, and a leg gated
//! inside its alert's admission counts like any other. Run on both backends by `contract!` in
//! the parent module.

use std::sync::{Arc, Mutex};

use dhanhook::{
    pipeline::controls::ist_day,
    store::{Admission, Gate, GateCounts, GateSpec, Journal, LegStatus, SendContext},
};

use super::{admitted, alert, move_leg, t0};

/// What each gate saw: (orders today, orders today of the alert's strategy).
type Seen = Arc<Mutex<Vec<(i64, i64)>>>;

fn spec(seen: &Seen, leg_no: u32, at: chrono::DateTime<chrono::Utc>, block: bool) -> GateSpec {
    let seen = Arc::clone(seen);
    GateSpec {
        leg_no,
        day: ist_day(at),
        rule: Arc::new(move |ctx: &SendContext| {
            seen.lock()
                .unwrap()
                .push((ctx.orders_today, ctx.strategy_orders_today));
            block.then(|| "blocked by the test".to_owned())
        }),
        now: at,
        counts: GateCounts::ALL,
    }
}

async fn gate(journal: &Arc<dyn Journal>, seen: &Seen, id: &str, block: bool) -> Gate {
    journal
        .gate_leg(id, spec(seen, 1, t0(), block))
        .await
        .unwrap_or_else(|e| panic!("gate {id}: {e}"))
}

pub(super) async fn the_days_sent_count_counts_each_leg_once(journal: Arc<dyn Journal>) {
    let seen: Seen = Arc::default();
    let last = |seen: &Seen| *seen.lock().unwrap().last().unwrap();
    for id in ["a", "b", "c", "d", "e"] {
        admitted(&journal, &alert(id, t0())).await;
    }
    let mut none = alert("n", t0());
    none.strategy = None;
    admitted(&journal, &none).await;

    assert_eq!(gate(&journal, &seen, "a", false).await, Gate::Send);
    assert_eq!(last(&seen), (0, 0), "nothing sent yet today");
    assert_eq!(gate(&journal, &seen, "b", false).await, Gate::Send);
    assert_eq!(last(&seen), (1, 1));
    assert_eq!(gate(&journal, &seen, "n", false).await, Gate::Send);
    assert_eq!(
        last(&seen),
        (2, 0),
        "the alert naming no strategy has its own count"
    );

    // The reconciler's single re-send of `a`: the same order, already counted.
    move_leg(&journal, "a", 1, LegStatus::Unknown).await;
    assert_eq!(gate(&journal, &seen, "a", false).await, Gate::Send);
    assert_eq!(
        gate(&journal, &seen, "c", true).await,
        Gate::Blocked("blocked by the test".into())
    );
    assert_eq!(last(&seen), (3, 2), "the re-send counted once");
    assert_eq!(gate(&journal, &seen, "d", false).await, Gate::Send);
    assert_eq!(last(&seen), (3, 2), "the blocked leg was not counted");

    // Gated inside its admission: counted like the others.
    let (admission, verdict) = journal
        .admit_gated(&alert("f", t0()), Some(spec(&seen, 1, t0(), false)))
        .await
        .unwrap();
    assert_eq!(
        (admission, verdict),
        (Admission::Admitted, Some(Gate::Send))
    );
    assert_eq!(last(&seen), (4, 3));
    assert_eq!(gate(&journal, &seen, "e", false).await, Gate::Send);
    assert_eq!(last(&seen), (5, 4));

    // The next IST day starts from zero.
    let tomorrow = t0() + chrono::Duration::days(1);
    admitted(&journal, &alert("g", tomorrow)).await;
    journal
        .gate_leg("g", spec(&seen, 1, tomorrow, false))
        .await
        .unwrap();
    assert_eq!(last(&seen), (0, 0));
}
