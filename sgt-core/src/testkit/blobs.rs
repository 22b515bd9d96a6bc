//! Conformance cases for [`BlobStore`](crate::blobs::BlobStore).

use bytes::Bytes;

use crate::blobs::{BlobKey, BlobStore};
use crate::error::ErrorKind;

fn key(k: &str) -> BlobKey {
    BlobKey::parse(k).unwrap()
}

/// What is put is got back, with its size.
pub async fn put_get_round_trip(store: &dyn BlobStore) {
    let data = Bytes::from((0..=255u8).cycle().take(100_000).collect::<Vec<_>>());
    store.put(&key("a/b/c"), data.clone()).await.unwrap();
    assert_eq!(store.get(&key("a/b/c")).await.unwrap(), data);
    assert_eq!(store.size(&key("a/b/c")).await.unwrap(), 100_000);
    store.put(&key("empty"), Bytes::new()).await.unwrap();
    assert_eq!(store.get(&key("empty")).await.unwrap(), Bytes::new());
}

/// A second put replaces the first whole, shorter or longer.
pub async fn put_replaces_whole(store: &dyn BlobStore) {
    store
        .put(&key("x"), Bytes::from_static(b"long long value"))
        .await
        .unwrap();
    store
        .put(&key("x"), Bytes::from_static(b"short"))
        .await
        .unwrap();
    assert_eq!(
        store.get(&key("x")).await.unwrap(),
        Bytes::from_static(b"short")
    );
}

/// Missing blobs are `NotFound`.
pub async fn missing_blob_is_not_found(store: &dyn BlobStore) {
    assert_eq!(
        store.get(&key("nope/x")).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store.size(&key("nope")).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

/// Deleting removes; deleting again still succeeds.
pub async fn delete_is_idempotent(store: &dyn BlobStore) {
    store
        .put(&key("d"), Bytes::from_static(b"1"))
        .await
        .unwrap();
    store.delete(&key("d")).await.unwrap();
    store.delete(&key("d")).await.unwrap();
    assert_eq!(
        store.get(&key("d")).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

/// `concat` joins the parts in the order given and keeps them.
pub async fn concat_joins_in_order(store: &dyn BlobStore) {
    let parts = [key("p/2"), key("p/0"), key("p/1")];
    for (i, p) in parts.iter().enumerate() {
        store
            .put(p, Bytes::from(vec![b'a' + i as u8; 1000 + i]))
            .await
            .unwrap();
    }
    let size = store.concat(&key("p/all"), &parts).await.unwrap();
    assert_eq!(size, 3003);
    let all = store.get(&key("p/all")).await.unwrap();
    let mut expected = vec![b'a'; 1000];
    expected.extend(vec![b'b'; 1001]);
    expected.extend(vec![b'c'; 1002]);
    assert_eq!(all.as_ref(), expected.as_slice());
    assert_eq!(store.size(&parts[0]).await.unwrap(), 1000);
}

/// `concat` with a missing part is `NotFound` and leaves no target behind.
pub async fn concat_with_missing_part_is_not_found(store: &dyn BlobStore) {
    store
        .put(&key("m/0"), Bytes::from_static(b"x"))
        .await
        .unwrap();
    let e = store
        .concat(&key("m/all"), &[key("m/0"), key("m/1")])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(
        store.get(&key("m/all")).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

/// Ranges read the right bytes, shorter at the end, empty past it.
pub async fn read_range_reads_pieces(store: &dyn BlobStore) {
    let data = Bytes::from((0..=255u8).cycle().take(10_000).collect::<Vec<_>>());
    store.put(&key("r"), data.clone()).await.unwrap();
    assert_eq!(
        store.read_range(&key("r"), 0, 100).await.unwrap(),
        data.slice(0..100)
    );
    assert_eq!(
        store.read_range(&key("r"), 9_990, 100).await.unwrap(),
        data.slice(9_990..)
    );
    assert!(store
        .read_range(&key("r"), 20_000, 100)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .read_range(&key("nope"), 0, 1)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}
