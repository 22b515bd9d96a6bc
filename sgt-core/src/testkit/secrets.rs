//! Conformance cases for [`SecretStore`](crate::secrets::SecretStore).

use crate::error::ErrorKind;
use crate::secrets::{EnrollSecret, SecretStore};
use crate::types::{random_hex, EnvironmentName, SecretValue};

/// A fresh secret for `environment`.
pub fn new_secret(environment: &str) -> EnrollSecret {
    EnrollSecret {
        id: random_hex(8),
        environment: EnvironmentName::parse(environment).unwrap(),
        value: SecretValue::generate(),
        created_at: 1000,
        expires_at: None,
    }
}

fn ids(secrets: &[EnrollSecret]) -> Vec<String> {
    let mut ids: Vec<String> = secrets.iter().map(|s| s.id.clone()).collect();
    ids.sort();
    ids
}

/// Added secrets are listed with their values until revoked.
pub async fn secrets_add_list_revoke(store: &dyn SecretStore) {
    let before = store.list_enroll_secrets().await.unwrap();
    let secret = new_secret("prod");
    store.add_enroll_secret(&secret).await.unwrap();
    let listed = store.list_enroll_secrets().await.unwrap();
    assert_eq!(listed.len(), before.len() + 1);
    let found = listed.iter().find(|s| s.id == secret.id).unwrap();
    assert!(found.value.matches(secret.value.expose()));
    assert_eq!(found.environment, secret.environment);
    store.revoke_enroll_secret(&secret.id).await.unwrap();
    assert!(!store
        .list_enroll_secrets()
        .await
        .unwrap()
        .iter()
        .any(|s| s.id == secret.id));
    let e = store.revoke_enroll_secret(&secret.id).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

/// Several secrets of one environment are valid together; revoking one keeps the others.
pub async fn several_secrets_per_environment(store: &dyn SecretStore) {
    let old = new_secret("prod");
    let new = new_secret("prod");
    store.add_enroll_secret(&old).await.unwrap();
    store.add_enroll_secret(&new).await.unwrap();
    let listed = ids(&store.list_enroll_secrets().await.unwrap());
    assert!(listed.contains(&old.id) && listed.contains(&new.id));
    store.revoke_enroll_secret(&old.id).await.unwrap();
    let listed = ids(&store.list_enroll_secrets().await.unwrap());
    assert!(!listed.contains(&old.id) && listed.contains(&new.id));
}

/// Adding a secret whose id exists is `AlreadyExists`.
pub async fn duplicate_secret_id_is_refused(store: &dyn SecretStore) {
    let secret = new_secret("prod");
    store.add_enroll_secret(&secret).await.unwrap();
    let e = store.add_enroll_secret(&secret).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
}
