//! The bodies of the webhook endpoints API: a registration or a change, read member by
//! member into the domain's checks, and the answers (an endpoint never shows its
//! secret, except in the answer that issues one).

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::error::ApiError;
use crate::domain::{
    EventType, FieldError, WebhookEndpoint, WebhookUrl, parse_description, parse_event_types,
};
use crate::wire::rfc3339;

/// The body of `POST /webhooks`.
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "Documents the body, which the handler reads member by member."
)]
pub struct WebhookRequest {
    /// Where deliveries go: an `http` or `https` URL, at most 2,048 bytes, whose host is
    /// public unless WEBHOOK_ALLOW_PRIVATE_NETWORKS is set.
    #[schema(max_length = 2048)]
    url: String,
    /// The event types delivered; every type when absent or `null`. Duplicates are
    /// merged.
    #[schema(min_items = 1)]
    event_types: Option<Vec<EventType>>,
    /// At most 500 characters.
    #[schema(max_length = 500)]
    description: Option<String>,
    /// `true` registers it disabled: nothing is delivered to it until it is enabled.
    disabled: Option<bool>,
}

/// The body of `PATCH /webhooks/{webhook_id}`: the members to change (at least one).
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "Documents the body, which the handler reads member by member."
)]
pub struct WebhookPatch {
    #[schema(max_length = 2048, nullable = false)]
    url: Option<String>,
    /// `null` for every type.
    #[schema(min_items = 1)]
    event_types: Option<Vec<EventType>>,
    #[schema(max_length = 500)]
    description: Option<String>,
    /// `true` stops deliveries to it; `false` resumes them.
    disabled: Option<bool>,
}

/// What a registration or a change asks for, each member checked.
#[derive(Debug, Default)]
pub struct Fields {
    pub url: Option<WebhookUrl>,
    /// `Some(None)`: every type.
    pub event_types: Option<Option<Vec<EventType>>>,
    pub description: Option<String>,
    pub disabled: Option<bool>,
}

/// Reads the members of a body; every offending member is reported at once (422).
/// Unknown members are ignored, as on every body.
pub fn read_fields(members: &Map<String, Value>, patch: bool) -> Result<Fields, ApiError> {
    let mut errors = Vec::new();
    let mut fields = Fields::default();
    match members.get("url") {
        Some(Value::String(text)) => match WebhookUrl::parse(text) {
            Ok(url) => fields.url = Some(url),
            Err(err) => errors.push(err),
        },
        None if patch => {}
        None => errors.push(FieldError::new("url", "is required")),
        Some(_) => errors.push(FieldError::new("url", "must be a string")),
    }
    match members.get("event_types") {
        None => {}
        Some(Value::Null) => fields.event_types = Some(None),
        Some(Value::Array(items)) => {
            let names: Option<Vec<String>> = items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect();
            match names.map(|names| parse_event_types(&names)) {
                Some(Ok(types)) => fields.event_types = Some(Some(types)),
                Some(Err(err)) => errors.push(err),
                None => errors.push(FieldError::new(
                    "event_types",
                    "must be an array of strings",
                )),
            }
        }
        Some(_) => errors.push(FieldError::new(
            "event_types",
            "must be an array of strings",
        )),
    }
    match members.get("description") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => match parse_description(text) {
            Ok(text) => fields.description = Some(text),
            Err(err) => errors.push(err),
        },
        Some(_) => errors.push(FieldError::new("description", "must be a string")),
    }
    match members.get("disabled") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(disabled)) => fields.disabled = Some(*disabled),
        Some(_) => errors.push(FieldError::new("disabled", "must be true or false")),
    }
    let changes_nothing = fields.url.is_none()
        && fields.event_types.is_none()
        && fields.description.is_none()
        && fields.disabled.is_none();
    if patch && errors.is_empty() && changes_nothing {
        errors.push(FieldError::new(
            "body",
            "names nothing to change: send url, event_types, description or disabled",
        ));
    }
    if errors.is_empty() {
        Ok(fields)
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// An endpoint as the API shows it: never its secret.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Webhook)]
pub struct WebhookBody {
    #[schema(format = Uuid)]
    id: String,
    url: String,
    description: String,
    /// The event types delivered; `null` for every type.
    event_types: Option<Vec<EventType>>,
    disabled: bool,
    /// When it was disabled; `null` while enabled.
    #[schema(format = DateTime)]
    disabled_at: Option<String>,
    /// Why: an operator, a `410 Gone`, or failing for too long.
    disabled_reason: Option<String>,
    /// After a rotation, until when deliveries are signed with the previous secret too.
    #[schema(format = DateTime)]
    previous_secret_expires_at: Option<String>,
    /// When a delivery last succeeded; `null` if none has yet.
    #[schema(format = DateTime)]
    last_delivered_at: Option<String>,
    /// Since when every attempt has failed; `null` while deliveries succeed. An
    /// endpoint failing for `WEBHOOK_DISABLE_AFTER` is disabled.
    #[schema(format = DateTime)]
    failing_since: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

impl WebhookBody {
    pub fn new(endpoint: &WebhookEndpoint) -> Self {
        Self {
            id: endpoint.id.to_string(),
            url: endpoint.url.as_str().to_owned(),
            description: endpoint.description.clone(),
            event_types: endpoint.event_types.clone(),
            disabled: endpoint.disabled_at.is_some(),
            disabled_at: endpoint.disabled_at.map(rfc3339),
            disabled_reason: endpoint.disabled_reason.clone(),
            previous_secret_expires_at: endpoint.previous_secret.as_ref().map(|(_, t)| rfc3339(*t)),
            last_delivered_at: endpoint.last_delivered_at.map(rfc3339),
            failing_since: endpoint.failing_since.map(rfc3339),
            created_at: rfc3339(endpoint.created_at),
            updated_at: rfc3339(endpoint.updated_at),
        }
    }
}

/// An endpoint with the secret just issued: the one answer that shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WebhookWithSecret)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    endpoint: WebhookBody,
    /// `whsec_` and the base64 of 32 random bytes: deliveries are signed with it
    /// (Standard Webhooks). Shown only here; keep it.
    secret: String,
}

impl WebhookWithSecret {
    pub fn new(endpoint: &WebhookEndpoint) -> Self {
        Self {
            endpoint: WebhookBody::new(endpoint),
            secret: endpoint.secret.clone(),
        }
    }
}

/// `{"webhooks": [...]}`, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    webhooks: Vec<WebhookBody>,
}

impl WebhookList {
    pub fn new(endpoints: &[WebhookEndpoint]) -> Self {
        Self {
            webhooks: endpoints.iter().map(WebhookBody::new).collect(),
        }
    }
}
