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
        last_delivered_at: None,
        failing_since: None,
        created_at: at(n),
        updated_at: at(n),
        revision: 1,
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

    // A new URL and filter, then disabled: all kept, at the next revision.
    let changed = WebhookEndpoint {
        url: WebhookUrl::parse("http://[2001:db8::1]:8443/new").unwrap(),
        event_types: Some(vec![EventType::Cancelled]),
        description: String::new(),
        disabled_at: Some(at(500)),
        disabled_reason: Some("410 Gone".into()),
        last_delivered_at: None,
        failing_since: None,
        updated_at: at(500),
        ..some_types.clone()
    };
    assert!(store.update_endpoint(&changed).await.unwrap());
    let changed = WebhookEndpoint {
        revision: 2,
        ..changed
    };
    assert_eq!(
        store.endpoint(changed.id).await.unwrap(),
        Some(changed.clone())
    );
    // A change made from an older revision is refused, and changes nothing.
    let stale = WebhookEndpoint {
        description: "stale".into(),
        ..some_types.clone()
    };
    assert!(!store.update_endpoint(&stale).await.unwrap());
    assert_eq!(
        store.endpoint(changed.id).await.unwrap(),
        Some(changed.clone())
    );

    // A rotation in one statement: the old secret kept beside the new, until a time.
    let rotated = store
        .rotate_secret(changed.id, &new_secret([9; 32]), at(86_400_000), at(600))
        .await
        .unwrap()
        .unwrap();
    let expected = WebhookEndpoint {
        secret: new_secret([9; 32]),
        previous_secret: Some((changed.secret.clone(), at(86_400_000))),
        updated_at: at(600),
        revision: 3,
        ..changed.clone()
    };
    assert_eq!(rotated, expected);
    assert_eq!(
        store.endpoint(changed.id).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        store
            .rotate_secret(WebhookId::new_at(at(9)), "whsec_x", at(1), at(1))
            .await
            .unwrap(),
        None
    );
    // A change leaves the secrets alone.
    let enabled = WebhookEndpoint {
        event_types: None,
        disabled_at: None,
        disabled_reason: None,
        last_delivered_at: None,
        failing_since: None,
        ..expected.clone()
    };
    assert!(store.update_endpoint(&enabled).await.unwrap());
    let enabled = WebhookEndpoint {
        revision: 4,
        ..enabled
    };
    assert_eq!(
        store.endpoint(enabled.id).await.unwrap(),
        Some(enabled.clone())
    );
    assert!(!store.update_endpoint(&endpoint(7, None)).await.unwrap());

    assert!(store.delete_endpoint(all_types.id).await.unwrap());
    assert!(!store.delete_endpoint(all_types.id).await.unwrap());
    assert_eq!(store.endpoints().await.unwrap(), [enabled]);
}
