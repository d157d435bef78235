//! The one list of routes: each template with its handlers and whether it is behind
//! admission. The router is built from it, the request metrics take their route
//! labels from it, and a test holds the OpenAPI document's paths to it.

use axum::routing::{MethodRouter, get, post};

use super::state::AppState;
use super::{
    activity, bulk_retry, deliveries, events, health, listing, metrics, openapi, orders, webhooks,
};

/// Whether a route learns its caller (401 without a valid token, when authentication
/// is on) and is rate-limited, or is open to anyone (probes, the document).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Admitted,
    Open,
}

/// One route: its template (also its metric label) and its handlers by method.
pub struct Route {
    pub template: &'static str,
    pub access: Access,
    pub handlers: fn() -> MethodRouter<AppState>,
}

/// Every route the service answers, besides the docs pages (`/docs`, which share the
/// metric label "other").
pub const ROUTES: &[Route] = &[
    Route {
        template: "/orders",
        access: Access::Admitted,
        handlers: || post(orders::create).get(listing::get),
    },
    Route {
        template: "/orders/retry",
        access: Access::Admitted,
        handlers: || post(bulk_retry::retry),
    },
    Route {
        template: "/orders/{order_id}",
        access: Access::Admitted,
        handlers: || get(orders::get),
    },
    Route {
        template: "/orders/{order_id}/status",
        access: Access::Admitted,
        handlers: || get(orders::status),
    },
    Route {
        template: "/orders/{order_id}/retry",
        access: Access::Admitted,
        handlers: || post(orders::retry),
    },
    Route {
        template: "/orders/{order_id}/cancel",
        access: Access::Admitted,
        handlers: || post(orders::cancel),
    },
    Route {
        template: "/orders/{order_id}/events",
        access: Access::Admitted,
        handlers: || get(events::history),
    },
    Route {
        template: "/events",
        access: Access::Admitted,
        handlers: || get(events::feed),
    },
    Route {
        template: "/webhooks",
        access: Access::Admitted,
        handlers: || post(webhooks::create).get(webhooks::list),
    },
    Route {
        template: "/webhooks/{webhook_id}",
        access: Access::Admitted,
        handlers: || {
            get(webhooks::get)
                .patch(webhooks::update)
                .delete(webhooks::delete)
        },
    },
    Route {
        template: "/webhooks/{webhook_id}/rotate-secret",
        access: Access::Admitted,
        handlers: || post(webhooks::rotate_secret),
    },
    Route {
        template: "/webhooks/{webhook_id}/deliveries",
        access: Access::Admitted,
        handlers: || get(deliveries::list),
    },
    Route {
        template: "/webhooks/{webhook_id}/deliveries/{delivery_id}/retry",
        access: Access::Admitted,
        handlers: || post(deliveries::retry),
    },
    Route {
        template: "/webhooks/{webhook_id}/recover",
        access: Access::Admitted,
        handlers: || post(deliveries::recover),
    },
    Route {
        template: "/metrics",
        access: Access::Admitted,
        handlers: || get(metrics::get),
    },
    Route {
        template: "/metrics/activity",
        access: Access::Admitted,
        handlers: || get(activity::get),
    },
    Route {
        template: "/metrics/prometheus",
        access: Access::Admitted,
        handlers: || get(metrics::prometheus),
    },
    Route {
        template: "/healthz",
        access: Access::Open,
        handlers: || get(health::healthz),
    },
    Route {
        template: "/readyz",
        access: Access::Open,
        handlers: || get(health::readyz),
    },
    Route {
        template: "/openapi.json",
        access: Access::Open,
        handlers: || get(openapi::json),
    },
];

/// The template a matched path names, as a `'static` label; `None` for a path the
/// list does not hold.
pub fn template(matched: &str) -> Option<&'static str> {
    ROUTES
        .iter()
        .map(|route| route.template)
        .find(|template| *template == matched)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn the_openapi_document_has_exactly_the_listed_routes() {
        let doc = serde_json::to_value(openapi::document()).unwrap();
        let documented: BTreeSet<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let listed: BTreeSet<&str> = ROUTES.iter().map(|route| route.template).collect();
        assert_eq!(documented, listed);
        assert_eq!(listed.len(), ROUTES.len(), "no template listed twice");
    }

    #[test]
    fn templates_are_found_by_their_exact_text() {
        assert_eq!(template("/orders/{order_id}"), Some("/orders/{order_id}"));
        assert_eq!(template("/orders/123"), None);
    }
}
