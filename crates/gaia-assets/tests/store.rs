//! The asset store on each backend it supports: a folder, memory, and an S3-compatible bucket
//! (`GAIA_TEST_S3_URL`, a moto server in CI).

use bytes::Bytes;
use gaia_assets::AssetStore;
use gaia_core::config::AssetsConfig;

async fn round_trip(store: &AssetStore) {
    let key = format!("owner/{}/file.bin", uuid::Uuid::new_v4().simple());
    let body = Bytes::from((0u8..=255).cycle().take(10_000).collect::<Vec<u8>>());
    store.put(&key, body.clone()).await.unwrap();
    assert_eq!(store.size(&key).await.unwrap(), 10_000, "{}", store.label());
    assert_eq!(store.get(&key).await.unwrap(), body);
    assert_eq!(store.get_range(&key, 100..164).await.unwrap(), body.slice(100..164));
    // Written again: replaced whole.
    store.put(&key, Bytes::from_static(b"short")).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap(), Bytes::from_static(b"short"));
    store.delete(&key).await.unwrap();
    let gone = store.get(&key).await.unwrap_err();
    assert_eq!(gone.status(), 404, "{gone}");
    store.delete(&key).await.unwrap();
}

#[tokio::test]
async fn a_folder_is_made_on_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/assets");
    let cfg = AssetsConfig { store: format!("file://{}", path.display()), ..Default::default() };
    let store = AssetStore::from_config(&cfg).unwrap();
    assert!(!path.exists(), "nothing is created before a file is written");
    round_trip(&store).await;
    assert!(path.exists());
    round_trip(&AssetStore::memory()).await;
}

#[tokio::test]
async fn an_s3_compatible_bucket() {
    let Some(url) = gaia_core::testing::s3_url() else { return };
    let bucket = format!("gaia-{}", uuid::Uuid::new_v4().simple());
    let r = reqwest::Client::new().put(format!("{url}/{bucket}")).send().await.unwrap();
    assert!(r.status().is_success(), "cannot create the bucket at {url}: {}", r.status());
    let cfg = AssetsConfig {
        store: format!("s3://{bucket}/game-one"),
        s3_endpoint: Some(url.clone()),
        s3_allow_http: true,
        s3_access_key_id: Some("test".into()),
        s3_secret_access_key: Some("test".into()),
        ..Default::default()
    };
    let store = AssetStore::from_config(&cfg).unwrap();
    round_trip(&store).await;
    // The prefix keeps a game's files under its own folder of the bucket.
    store.put("k", Bytes::from_static(b"x")).await.unwrap();
    let listing = reqwest::get(format!("{url}/{bucket}?list-type=2")).await.unwrap().text().await.unwrap();
    assert!(listing.contains("<Key>game-one/k</Key>"), "{listing}");
    // A bucket name is required.
    let bad = AssetsConfig { store: "s3://".into(), ..Default::default() };
    assert_eq!(AssetStore::from_config(&bad).unwrap_err().status(), 400);
}
