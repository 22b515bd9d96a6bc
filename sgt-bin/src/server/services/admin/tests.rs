//! The admin service's rules on [`MemoryStore`]: no TLS, no SQLite, milliseconds each.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::{AdminService, Caller};
use crate::server::services::config_doc::default_config;
use sgt_core::error::ErrorKind;
use sgt_core::store::{ApiToken, Role, Store, TokenKind, User};
use sgt_core::testkit::doubles::{default_backends, FaultyStore};
use sgt_core::testkit::memory_store::MemoryStore;
use sgt_core::types::Username;

/// An admin service on `store`, with the default environment.
async fn service_on(store: Arc<dyn Store>) -> AdminService {
    AdminService::new(default_backends(store, default_config()).await.0)
}

/// A stored user with `role` (a fake password hash: these tests never log in), and a caller
/// acting as them.
async fn user(service: &AdminService, name: &str, role: Role) -> (User, Caller) {
    let user = User {
        id: User::new_id(),
        username: Username::parse(name).unwrap(),
        role,
        password_hash: "$argon2id$not-a-real-hash".into(),
        created_at: 1,
    };
    service.backends.store.create_user(&user).await.unwrap();
    let caller = Caller {
        username: user.username.clone(),
        role,
        token_id: format!("token-of-{name}"),
    };
    (user, caller)
}

#[tokio::test]
async fn racing_pack_edits_are_all_kept() {
    // Every store call yields for a millisecond, so the edits interleave and conflict.
    let store = Arc::new(FaultyStore::slow(
        Arc::new(MemoryStore::new()),
        Duration::from_millis(1),
    ));
    let service = service_on(store).await;
    let (_, operator) = user(&service, "op", Role::Operator).await;
    let edits = (0..12).map(|i| {
        let pack = json!({"queries": {"q": {"query": "SELECT 1;", "interval": 60}}});
        let (service, operator) = (&service, &operator);
        async move {
            service
                .put_pack(operator, "default", &format!("p{i}"), pack)
                .await
        }
    });
    for written in futures_util::future::join_all(edits).await {
        written.unwrap();
    }
    let packs = service.packs(&operator, "default").await.unwrap();
    assert_eq!(packs.len(), 12);
    let version = service
        .versioned_config(&operator, "default")
        .await
        .unwrap()
        .version;
    assert_eq!(
        version, 13,
        "one replacement per edit, none lost or doubled"
    );
}

#[tokio::test]
async fn a_config_write_at_a_stale_version_changes_nothing() {
    let service = service_on(Arc::new(MemoryStore::new())).await;
    let (_, operator) = user(&service, "op", Role::Operator).await;
    let read = service
        .versioned_config(&operator, "default")
        .await
        .unwrap();
    let first = json!({"options": {"distributed_interval": 10}});
    let written = service
        .put_config(&operator, "default", first.clone(), Some(read.version))
        .await
        .unwrap();
    assert_eq!(written.version, read.version + 1);
    let stale = service
        .put_config(&operator, "default", json!({}), Some(read.version))
        .await
        .unwrap_err();
    assert_eq!(stale.kind(), ErrorKind::Conflict);
    let now = service
        .versioned_config(&operator, "default")
        .await
        .unwrap();
    assert_eq!((now.config, now.version), (first, written.version));
}

#[tokio::test]
async fn viewers_change_no_config_or_pack() {
    let service = service_on(Arc::new(MemoryStore::new())).await;
    let (_, viewer) = user(&service, "vic", Role::Viewer).await;
    let refused = service
        .put_pack(&viewer, "default", "p", json!({"queries": {}}))
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Forbidden);
    let refused = service
        .put_config(&viewer, "default", json!({}), None)
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Forbidden);
}

#[tokio::test]
async fn the_last_admin_cannot_demote_or_delete_themself() {
    let service = service_on(Arc::new(MemoryStore::new())).await;
    let (_, admin) = user(&service, "root", Role::Admin).await;
    let refused = service
        .update_user(&admin, "root", Some(Role::Viewer), None, None)
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Conflict);
    let refused = service.delete_user(&admin, "root").await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Conflict);
    user(&service, "second", Role::Admin).await;
    service
        .update_user(&admin, "root", Some(Role::Viewer), None, None)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_token_works_only_for_the_user_it_was_made_for() {
    let service = service_on(Arc::new(MemoryStore::new())).await;
    let (first, admin) = user(&service, "root", Role::Admin).await;
    let (reused, _) = user(&service, "reused", Role::Operator).await;
    let token = |user: &User, secret: &str| ApiToken {
        id: format!("id-{secret}"),
        username: user.username.clone(),
        user_id: user.id.clone(),
        kind: TokenKind::Api,
        name: "t".into(),
        token_hash: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(secret)),
        created_at: 1,
        expires_at: None,
    };
    let store = &service.backends.store;
    store
        .create_token(&token(&reused, "sgt_old"))
        .await
        .unwrap();
    service.delete_user(&admin, "reused").await.unwrap();
    // A later user of the same name, and a token of the first one that survived.
    let (_, _) = user(&service, "reused", Role::Operator).await;
    store
        .create_token(&token(&reused, "sgt_old"))
        .await
        .unwrap();
    let refused = service.authenticate(Some("sgt_old")).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Unauthorized);
    // A token of the current user works.
    store
        .create_token(&token(&first, "sgt_root"))
        .await
        .unwrap();
    let caller = service.authenticate(Some("sgt_root")).await.unwrap();
    assert_eq!(caller.role, Role::Admin);
}
