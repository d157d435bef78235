//! The work queue: claims under leases and what ends them, and operator retries.

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{AfterFailure, CancelReason, OrderId, OrderResult, Timestamp};
use crate::store::{
    CancelOutcome, Claim, ClaimOutcome, Extended, FailedFilter, Rescued, RetryOutcome, StoreError,
};

/// The work queue: claims under leases and what ends them, and operator retries.
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Claims up to `limit` `Pending` orders that are due at `now`, longest due first:
    /// each becomes `Processing` with `attempts` incremented and a lease ending `lease`
    /// after `now`, in one short committed transaction.
    async fn claim(
        &self,
        limit: usize,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Vec<Claim>, StoreError>;

    /// Moves a claimed order to `Completed` at `now`, keeping the processor's `result`
    /// if it gave one, if the claim is still current.
    async fn complete(
        &self,
        claim: &Claim,
        result: Option<&OrderResult>,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError>;

    /// Extends the leases of claims still being worked on to `lease` after `now`, in
    /// one write, each only if its claim is still current. Writes no event: the orders
    /// themselves do not change.
    async fn extend(
        &self,
        claims: &[Claim],
        now: Timestamp,
        lease: Duration,
    ) -> Result<Extended, StoreError>;

    /// Records a failed attempt, if the claim is still current: back to `Pending` (not
    /// claimable before the retry time) or on to `Failed`, with `error` as `last_error`.
    async fn fail(
        &self,
        claim: &Claim,
        error: &str,
        after: AfterFailure,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError>;

    /// Returns a claimed order to `Pending` at `now` (an attempt interrupted by a stop,
    /// not a failure), if the claim is still current.
    async fn release(&self, claim: &Claim, now: Timestamp) -> Result<ClaimOutcome, StoreError>;

    /// Takes back every `Processing` order whose lease ended before `now`: to `Pending`,
    /// or to `Failed` if it has had `max_attempts` attempts (an order that kills its
    /// worker every time must not loop for ever).
    async fn rescue_expired(
        &self,
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<Rescued, StoreError>;

    /// Puts a `Failed` order back to `Pending`, due at `now`, with its attempts reset.
    async fn retry_failed(&self, id: OrderId, now: Timestamp) -> Result<RetryOutcome, StoreError>;

    /// How many `Failed` orders match `filter`.
    async fn count_failed(&self, filter: &FailedFilter) -> Result<u64, StoreError>;

    /// Puts up to `limit` `Failed` orders matching `filter` back to `Pending` as
    /// [`Queue::retry_failed`] does, oldest first, in one transaction; returns how many.
    /// Callers repeat while `limit` come back, so no transaction grows without bound.
    async fn retry_failed_matching(
        &self,
        filter: &FailedFilter,
        now: Timestamp,
        limit: usize,
    ) -> Result<u64, StoreError>;

    /// Moves a `Pending` or `Failed` order to `Cancelled` at `now`, keeping `reason`.
    /// A claim cannot take it meanwhile: either the cancel or the claim wins.
    async fn cancel(
        &self,
        id: OrderId,
        reason: Option<&CancelReason>,
        now: Timestamp,
    ) -> Result<CancelOutcome, StoreError>;
}
