//! One attempt: sends a claimed delivery's event to its endpoint and decides from the
//! answer what follows (delivered, retried on the schedule, or given up).

use super::send::{Sent, Target};
use super::shared::Shared;
use crate::domain::{AfterAttempt, Answer, OrderEvent, now};
use crate::store::{DeliveryClaim, FinishedAttempt, NextStep};
use crate::wire::WebhookPayload;

/// Makes one attempt and decides what follows it.
pub(super) async fn attempt(
    shared: &Shared,
    claim: DeliveryClaim,
    event: Option<OrderEvent>,
    target: &Result<Target, String>,
) -> FinishedAttempt {
    let (sender, schedule) = (&shared.sender, shared.schedule);
    let delivery = &claim.delivery;
    let retry =
        |at, retry_after| match schedule.after(delivery.attempts, at, fastrand::f64(), retry_after)
        {
            AfterAttempt::RetryAt(when) => NextStep::RetryAt(when),
            AfterAttempt::GiveUp => NextStep::GiveUp,
        };
    let finished = |at, status_code, error, next, gone, reached| FinishedAttempt {
        id: delivery.id,
        token: claim.token,
        endpoint_id: delivery.endpoint_id,
        at,
        status_code,
        error,
        next,
        gone,
        reached,
    };
    let sent = match (event, target) {
        (Some(event), Ok(target)) => {
            let body =
                serde_json::to_vec(&WebhookPayload::new(&event)).expect("an event serialises");
            sender
                .send(target, &delivery.event_id.hyphenated().to_string(), &body)
                .await
        }
        // Failures on this side are recorded, but say nothing of the endpoint's health.
        // Retention keeps what is owed, so only the recovery of a delivery older than
        // EVENT_RETENTION meets this one: nothing can be sent, now or later.
        (None, _) => {
            let why = "the event is no longer kept in the log (EVENT_RETENTION)";
            return finished(
                now(),
                None,
                Some(why.to_owned()),
                NextStep::GiveUp,
                false,
                false,
            );
        }
        (_, Err(why)) => {
            let why = format!("the endpoint cannot be used: {why}");
            let at = now();
            return finished(at, None, Some(why), retry(at, None), false, false);
        }
    };
    let at = now();
    let (status_code, error, next, gone) = match sent {
        Sent::Answered {
            status,
            retry_after,
            text,
        } => {
            let error = text.map(|text| format!("answered {status}: {text}"));
            match Answer::of(status) {
                Answer::Accepted => (Some(status), None, NextStep::Delivered, false),
                Answer::Gone => (Some(status), error, retry(at, None), true),
                Answer::Busy => (Some(status), error, retry(at, retry_after), false),
                Answer::Refused => (Some(status), error, retry(at, None), false),
            }
        }
        Sent::NoAnswer(why) => (None, Some(why), retry(at, None), false),
    };
    finished(at, status_code, error, next, gone, true)
}
