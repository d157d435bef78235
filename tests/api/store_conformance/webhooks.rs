//! Webhook endpoints: every field read back as written, changes, removal.

use order_processor::domain::{EventType, WebhookEndpoint, WebhookId, WebhookUrl, new_secret};

use super::at;
use crate::helpers::{TestDb, on_every_backend};

on_every_backend!(endpoints_read_back_as_written_change_and_go,);

fn endpoint(n: i64, types: Option<Vec<EventType>>) -> WebhookEndpoint {
    WebhookEndpoint {
        id: WebhookId::new_at(at(n)),
        url: WebhookUrl::parse(&format!("https://shop{n}.example/hooks?k=v")).unwrap(),
        description: format!("endpoint {n} – ERP"),
        event_types: types,
        secret: new_secret([n as u8; 32]),
        previous_secret: None,
        disabled_at: None,
        disabled_reason: None,
        created_at: at(n),
        updated_at: at(n),
    }
}

async fn endpoints_read_back_as_written_change_and_go(db: TestDb) {
    let store = db.store().await;
    let all_types = endpoint(1, None);
    let some_types = endpoint(2, Some(vec![EventType::Completed, EventType::Failed]));
    store.insert_endpoint(&some_types).await.unwrap();
    store.insert_endpoint(&all_types).await.unwrap();
    assert_eq!(
        store.endpoints().await.unwrap(),
        [all_types.clone(), some_types.clone()],
        "oldest first, every field as written"
    );
    assert_eq!(
        store.endpoint(some_types.id).await.unwrap(),
        Some(some_types.clone())
    );
    assert_eq!(
        store.endpoint(WebhookId::new_at(at(9))).await.unwrap(),
        None
    );

    // A rotation, a new URL and filter, then disabled: all kept.
    let changed = WebhookEndpoint {
        url: WebhookUrl::parse("http://[2001:db8::1]:8443/new").unwrap(),
        event_types: Some(vec![EventType::Cancelled]),
        description: String::new(),
        secret: new_secret([9; 32]),
        previous_secret: Some((some_types.secret.clone(), at(86_400_000))),
        disabled_at: Some(at(500)),
        disabled_reason: Some("410 Gone".into()),
        updated_at: at(500),
        ..some_types.clone()
    };
    assert!(store.update_endpoint(&changed).await.unwrap());
    assert_eq!(
        store.endpoint(changed.id).await.unwrap(),
        Some(changed.clone())
    );
    let enabled = WebhookEndpoint {
        event_types: None,
        previous_secret: None,
        disabled_at: None,
        disabled_reason: None,
        ..changed.clone()
    };
    assert!(store.update_endpoint(&enabled).await.unwrap());
    assert_eq!(
        store.endpoint(enabled.id).await.unwrap(),
        Some(enabled.clone())
    );
    assert!(!store.update_endpoint(&endpoint(7, None)).await.unwrap());

    assert!(store.delete_endpoint(all_types.id).await.unwrap());
    assert!(!store.delete_endpoint(all_types.id).await.unwrap());
    assert_eq!(store.endpoints().await.unwrap(), [enabled]);
}
