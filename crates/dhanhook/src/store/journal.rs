//! The journal's operations, one trait per responsibility, so a component can be given only
//! what it uses (an `Arc<dyn QueueJournal>` converts from an `Arc<dyn Journal>` by upcasting).
//! [`Journal`] is all of them together, implemented by every type that implements each part.

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    Admission, AlertRecord, AlertStatus, AlertStatusChange, Gate, GateSpec, JournalError,
    LegDetail, LegEvent, LegSource, LegUpdate, NewAlert, OrderRow, QueueSummary, StoredToken,
};

/// Alerts and their legs: admission, leg transitions, the alert's derived status, and reading
/// them back (the pipeline, `/logs`, `orders`). [`AlertJournal::admit`] is atomic: either the
/// alert, its legs and its dedupe key are all written, or nothing is.
#[async_trait]
pub trait AlertJournal: Send + Sync + fmt::Debug {
    /// Journals a new alert, or recognises a redelivery of one whose dedupe key is still live.
    async fn admit(&self, alert: &NewAlert) -> Result<Admission, JournalError>;

    /// [`AlertJournal::admit`], and for a new alert also the send gate of one of its legs
    /// (`gate`: see [`super::ControlJournal::gate_leg`]) in the same transaction: a leg to be
    /// sent at once costs one commit for admission and its SUBMITTING mark, not two. The gate's
    /// verdict is `None` for a repeat (nothing was judged) or when no gate was asked for.
    async fn admit_gated(
        &self,
        alert: &NewAlert,
        gate: Option<GateSpec>,
    ) -> Result<(Admission, Option<Gate>), JournalError>;

    /// Moves one leg to a new status (only along a legal transition), as the placer does
    /// (its `leg_events` entry names the source `placement`).
    async fn update_leg(
        &self,
        alert_id: &str,
        leg_no: u32,
        update: &LegUpdate,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        self.transition_leg(
            alert_id,
            leg_no,
            update,
            &LegDetail::default(),
            LegSource::Placement,
            now,
        )
        .await
    }

    /// Moves one leg to a new status (only along a legal transition) with what the broker
    /// said about it, and records the transition in its history (`leg_events`, with `now`
    /// and `source`) in the same transaction.
    async fn transition_leg(
        &self,
        alert_id: &str,
        leg_no: u32,
        update: &LegUpdate,
        detail: &LegDetail,
        source: LegSource,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError>;

    /// [`AlertJournal::transition_leg`], also changing the alert's overall status as `alert`
    /// says in the same transaction: a leg's move and its alert's status are one commit.
    #[allow(clippy::too_many_arguments)] // the transition's parts, as `transition_leg` has them
    async fn transition_leg_and_alert(
        &self,
        alert_id: &str,
        leg_no: u32,
        update: &LegUpdate,
        detail: &LegDetail,
        source: LegSource,
        alert: AlertStatusChange,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError>;

    /// Every transition of the alert's legs, by leg, oldest first.
    async fn leg_events(&self, alert_id: &str) -> Result<Vec<LegEvent>, JournalError>;

    /// Records the alert's overall status, as derived from its legs by the caller.
    async fn set_alert_status(
        &self,
        alert_id: &str,
        status: AlertStatus,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError>;

    /// An alert with its legs, if it exists.
    async fn alert(&self, alert_id: &str) -> Result<Option<AlertRecord>, JournalError>;

    /// An alert with its legs and their history (`GET /orders/{id}`, the dashboard's alert
    /// page), if it exists.
    async fn alert_history(
        &self,
        alert_id: &str,
    ) -> Result<Option<(AlertRecord, Vec<LegEvent>)>, JournalError> {
        let Some(record) = self.alert(alert_id).await? else {
            return Ok(None);
        };
        let events = self.leg_events(alert_id).await?;
        Ok(Some((record, events)))
    }

    /// The newest order legs first, at most `limit`.
    async fn recent_orders(&self, limit: u32) -> Result<Vec<OrderRow>, JournalError>;

    /// The legs on instrument `security_id` (in `exchange_segment`) that are not final yet,
    /// oldest first: dhanhook's own orders that may still move that position (position-aware
    /// alerts count them; `cancel_order` cancels them).
    async fn open_legs_on(
        &self,
        security_id: &str,
        exchange_segment: &str,
    ) -> Result<Vec<OrderRow>, JournalError>;
}

/// The durable queue: alerts waiting for their market to open, and the claims queue runs hold
/// on them while they place their legs.
///
/// An alert *waits* while it was queued, holds legs that are still QUEUED and nobody holds a
/// claim on it. A claim (holder and instant) is taken in one statement, so two runners never
/// claim the same alert; it ends with [`QueueJournal::requeue`], [`QueueJournal::release_claim`]
/// or, for a run that died, [`QueueJournal::recover_claims`]. The claim never touches the
/// alert's stored status, which stays what its legs say.
#[async_trait]
pub trait QueueJournal: Send + Sync + fmt::Debug {
    /// When the earliest waiting alert becomes due, if any alert waits.
    async fn next_queued_at(&self) -> Result<Option<DateTime<Utc>>, JournalError>;

    /// Claims for `holder` the oldest waiting alert that is due at `now`.
    async fn claim_due(
        &self,
        holder: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, JournalError>;

    /// Puts a claimed alert back in the queue until `until` (its claim ends).
    async fn requeue(
        &self,
        alert_id: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError>;

    /// Ends `holder`'s claim on an alert whose run is over.
    async fn release_claim(&self, alert_id: &str, holder: &str) -> Result<(), JournalError>;

    /// Claims taken before `claimed_before` by a run that never finished (its process died)
    /// end, so the alert waits again, when legs of theirs are still QUEUED (never sent). Legs
    /// already SUBMITTING or later are not touched. The cut-off leaves claims a live instance
    /// is working on alone.
    async fn recover_claims(
        &self,
        claimed_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, JournalError>;

    /// Alerts that were ever queued, counted by status, and the waiting and claimed ones,
    /// oldest first, at most `limit` (for `/queue-stats`).
    async fn queue_summary(&self, limit: u32) -> Result<QueueSummary, JournalError>;
}

/// What the reconciler needs beyond [`AlertJournal`]: the legs whose outcome is open, and the
/// single permitted re-send.
#[async_trait]
pub trait ReconcileJournal: Send + Sync + fmt::Debug {
    /// Legs the reconciler looks at, oldest first: SUBMITTING or UNKNOWN (their outcome must
    /// be found at the broker), and RECEIVED (placement may have been interrupted).
    async fn legs_to_reconcile(&self, limit: u32) -> Result<Vec<OrderRow>, JournalError>;

    /// Claims the one permitted re-send of a leg (`resends` 0 → 1). `true` for the single
    /// caller that may re-send; every other caller, now or after a restart, gets `false`.
    async fn claim_resend(&self, alert_id: &str, leg_no: u32) -> Result<bool, JournalError>;
}

/// What the order tracker needs beyond [`AlertJournal`]: the legs open at the broker.
#[async_trait]
pub trait TrackJournal: Send + Sync + fmt::Debug {
    /// Legs ACCEPTED, PENDING or PART_TRADED that have a broker order id and moved at or
    /// after `since`, most recently moved first, at most `limit`.
    async fn legs_to_track(
        &self,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OrderRow>, JournalError>;

    /// The leg sent with `correlation_id`, whatever its state (the order-update feed names
    /// orders by the correlationId they were sent with).
    async fn leg_by_correlation(
        &self,
        correlation_id: &str,
    ) -> Result<Option<OrderRow>, JournalError>;
}

/// The Dhan access token kept across restarts (the token keeper).
#[async_trait]
pub trait TokenStore: Send + Sync + fmt::Debug {
    /// The stored Dhan token for `client_id`, if any (valid or not: the caller decides).
    async fn load_token(&self, client_id: &str) -> Result<Option<StoredToken>, JournalError>;

    /// Stores the token in use for its client id, replacing the previous one.
    async fn save_token(&self, token: &StoredToken) -> Result<(), JournalError>;
}

/// Named leases: a job held by one instance at a time across every instance sharing the
/// journal (minting the token, the reconciler's pass).
#[async_trait]
pub trait Leases: Send + Sync + fmt::Debug {
    /// Takes or renews the lease `name` for `holder` until `until`: granted when the lease is
    /// free, expired (at `now`) or already held by `holder`.
    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, JournalError>;

    /// Gives the lease up early (only if `holder` holds it).
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), JournalError>;
}

/// The journal's own life: schema, health, shutdown (start-up, `/ready`, `check`).
#[async_trait]
pub trait JournalLifecycle: Send + Sync + fmt::Debug {
    /// Applies pending schema migrations.
    async fn migrate(&self) -> Result<(), JournalError>;

    /// Proves the journal accepts a durable write right now (for `/ready`).
    async fn check_writable(&self, now: DateTime<Utc>) -> Result<(), JournalError>;

    /// Closes connections; called once at shutdown after in-flight work finished.
    async fn close(&self);
}

/// What the token keeper uses: the stored token and the mint lease.
pub trait TokenJournal: TokenStore + Leases {}

impl<T> TokenJournal for T where T: TokenStore + Leases + ?Sized {}

/// The whole journal, for the places that hand it around (`Arc<dyn Journal>`). Implemented
/// for every type that implements each part; a component that needs only one part can be
/// given `Arc<dyn QueueJournal>` (or another part) made from the `Arc<dyn Journal>`.
pub trait Journal:
    AlertJournal
    + QueueJournal
    + ReconcileJournal
    + TrackJournal
    + TokenStore
    + Leases
    + TokenJournal
    + super::OutboxJournal
    + super::ReportJournal
    + super::ControlJournal
    + JournalLifecycle
{
}

impl<T> Journal for T where
    T: AlertJournal
        + QueueJournal
        + ReconcileJournal
        + TrackJournal
        + TokenStore
        + Leases
        + super::OutboxJournal
        + super::ReportJournal
        + super::ControlJournal
        + JournalLifecycle
        + ?Sized
{
}
